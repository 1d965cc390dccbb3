// Active-active topologies (see the AegisKV DocC article, "Topologies"): which clusters
// of a group exchange changes directly (links), and whether a cluster forwards the
// changes it merged from one neighbour to its other neighbours.
//
// - mesh: every cluster links every other; a cluster ships only its own clients'
//   writes (each change reaches each cluster once, from its origin).
// - star: one hub links every other cluster (the spokes); spokes do not link each
//   other. The hub forwards what it merged from one spoke to the other spokes.
// - tree: links given as pairs, connected and without a cycle (one path between any
//   two clusters). Every cluster forwards what it merged from one neighbour to its
//   other neighbours.
//
// Forwarding rules (`forwards(origin:cameFrom:to:at:)`, in one place): a change is
// never sent to its origin nor back to the link it came from; a cluster that does not
// forward (mesh) ships only changes whose origin is itself. In a tree the path between
// two clusters is unique, so with these rules a change reaches every cluster exactly
// once and never loops. A receiver also refuses a batch whose source is itself.
//
// The topology is replicated state of each cluster (command 77, snapshot section 7):
// every node of a cluster, and a new leader, agrees on its links. It also names the
// group for garbage collection: tombstones are dropped only once every cluster of the
// topology (not only the neighbours) reported having merged them; in a star or tree the
// reports of non-neighbours are relayed in the batches (`ActiveActiveBatch.relayed`).

/// The shape of an active-active group.
public enum ActiveActiveTopologyKind: UInt8, Sendable, Hashable, CaseIterable {
    /// Every cluster links every other; nothing is forwarded.
    case mesh = 0
    /// One hub links every spoke and forwards between them.
    case star = 1
    /// Links given as pairs, connected and acyclic; every cluster forwards.
    case tree = 2

    /// The name used in files and the admin API.
    public var name: String {
        switch self {
        case .mesh: return "mesh"
        case .star: return "star"
        case .tree: return "tree"
        }
    }

    /// The kind named `name` (`nil` when unknown).
    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = kind
    }
}

/// Why a topology or a change of it is refused.
public struct ActiveActiveTopologyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The rule broken.
    public enum Code: String, Sendable, Hashable {
        /// No cluster, or more than `ActiveActiveTopology.maxClusters`.
        case size
        /// A cluster ID or address that is empty, too long or repeated.
        case badName
        /// A link names a cluster the topology does not list.
        case unknownCluster
        /// This cluster is not in the topology.
        case notMember
        /// A link from a cluster to itself, or the same link twice.
        case badLink
        /// Some cluster cannot be reached from the others.
        case notConnected
        /// A tree with a cycle.
        case cycle
        /// A star without a listed hub, or links given for a mesh or star.
        case badShape
        /// A removal of this cluster itself or of the star's hub.
        case cannotRemove
    }

    /// The rule broken.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// An active-active group's topology, as one cluster holds it: every cluster with its
/// admin addresses, the kind, the hub of a star and the links of a tree.
public struct ActiveActiveTopology: Sendable, Hashable {
    /// The kind.
    public var kind: ActiveActiveTopologyKind
    /// Every cluster of the group with its admin addresses (empty for a cluster this
    /// one never links, or for itself).
    public var clusters: [String: [String]]
    /// The hub of a star (empty otherwise).
    public var hub: String
    /// The links of a tree, each as a pair (first < second, byte-wise); empty for a
    /// mesh or a star (their links follow from the clusters).
    public var links: Set<ActiveActiveLink>

    /// The most clusters in a group (as many as a progress vector holds).
    public static let maxClusters = ActiveActiveBatch.maxProgressEntries
    /// The most admin addresses of one cluster.
    public static let maxAddresses = 16

    /// Creates a topology (check it with `validate(for:)`).
    public init(kind: ActiveActiveTopologyKind, clusters: [String: [String]], hub: String = "",
                links: Set<ActiveActiveLink> = []) {
        self.kind = kind
        self.clusters = clusters
        self.hub = hub
        self.links = links
    }

    /// Whether the clusters forward changes merged from a neighbour (star and tree).
    public var forwards: Bool { kind != .mesh }

    /// Every link of the topology (a mesh's and a star's follow from the clusters).
    public var allLinks: Set<ActiveActiveLink> {
        switch kind {
        case .tree:
            return links
        case .star:
            return Set(clusters.keys.filter { $0 != hub }.map { ActiveActiveLink($0, hub) })
        case .mesh:
            let ids = clusters.keys.sorted(by: Self.precedes)
            var all = Set<ActiveActiveLink>()
            for (offset, first) in ids.enumerated() {
                for second in ids[(offset + 1)...] { all.insert(ActiveActiveLink(first, second)) }
            }
            return all
        }
    }

    /// The clusters `cluster` links directly, in ascending order.
    public func neighbours(of cluster: String) -> [String] {
        allLinks.compactMap { $0.other(than: cluster) }.sorted(by: Self.precedes)
    }

    /// Whether a change with origin `origin`, that reached `cluster` over the link from
    /// `cameFrom` (`nil`: written by `cluster`'s own clients), is shipped to its
    /// neighbour `neighbour`. Never to the origin, never back where it came from; only
    /// a forwarding topology ships what another cluster wrote.
    public func forwards(origin: String, cameFrom: String?, to neighbour: String, at cluster: String) -> Bool {
        guard neighbour != origin, neighbour != cameFrom, neighbour != cluster else { return false }
        guard let cameFrom else { return origin == cluster }
        return forwards && cameFrom != cluster
    }

    // MARK: Validation

    /// Checks every rule for `cluster`'s copy of the topology: a size of 1 to
    /// `maxClusters`, names of 1 to 255 bytes, up to `maxAddresses` addresses, links
    /// only between listed clusters, `cluster` listed, a star's hub listed and no given
    /// links for a mesh or star, a tree connected and without a cycle.
    public func validate(for cluster: String) throws(ActiveActiveTopologyError) {
        guard (1 ... Self.maxClusters).contains(clusters.count) else {
            throw ActiveActiveTopologyError(.size, "a topology has 1 to \(Self.maxClusters) clusters, not \(clusters.count)")
        }
        for (id, addresses) in clusters {
            guard Self.validName(id) else { throw ActiveActiveTopologyError(.badName, "cluster ID '\(id)' must be 1 to 255 bytes") }
            guard addresses.count <= Self.maxAddresses, addresses.allSatisfy(Self.validName),
                  Set(addresses).count == addresses.count else {
                throw ActiveActiveTopologyError(.badName, "cluster \(id): 0 to \(Self.maxAddresses) distinct addresses of 1 to 255 bytes")
            }
        }
        guard clusters[cluster] != nil else {
            throw ActiveActiveTopologyError(.notMember, "this cluster (\(cluster)) is not in the topology")
        }
        switch kind {
        case .mesh, .star:
            guard links.isEmpty else {
                throw ActiveActiveTopologyError(.badShape, "a \(kind.name) takes no links (they follow from the clusters)")
            }
            if kind == .star && clusters[hub] == nil {
                throw ActiveActiveTopologyError(.badShape, "the star's hub '\(hub)' is not one of its clusters")
            }
        case .tree:
            for link in links {
                guard link.first != link.second else {
                    throw ActiveActiveTopologyError(.badLink, "a link from \(link.first) to itself")
                }
                for end in [link.first, link.second] where clusters[end] == nil {
                    throw ActiveActiveTopologyError(.unknownCluster, "the link \(link) names \(end), which is not in the topology")
                }
            }
        }
        try checkConnectedAndAcyclic()
    }

    /// Every cluster reachable from any; a tree without a cycle (n - 1 links, connected).
    private func checkConnectedAndAcyclic() throws(ActiveActiveTopologyError) {
        let all = allLinks
        guard let start = clusters.keys.min(by: Self.precedes) else { return }
        var reached: Set<String> = [start]
        var frontier = [start]
        while let next = frontier.popLast() {
            for link in all {
                guard let other = link.other(than: next), !reached.contains(other) else { continue }
                reached.insert(other)
                frontier.append(other)
            }
        }
        guard reached.count == clusters.count else {
            let missing = clusters.keys.filter { !reached.contains($0) }.sorted(by: Self.precedes)
            throw ActiveActiveTopologyError(.notConnected, "not connected: \(missing.joined(separator: ", ")) cannot be reached from \(start)")
        }
        if kind == .tree && all.count != clusters.count - 1 {
            throw ActiveActiveTopologyError(.cycle, "a tree of \(clusters.count) clusters has \(clusters.count - 1) links, not \(all.count) (a cycle)")
        }
    }

    // MARK: Changes

    /// The topology with `cluster` added (or its addresses replaced when listed),
    /// linked to `via` in a tree (by default `local`, the cluster that holds this copy).
    public func adding(_ cluster: String, addresses: [String], via: String?,
                       local: String) throws(ActiveActiveTopologyError) -> ActiveActiveTopology {
        var next = self
        let existed = clusters[cluster] != nil
        next.clusters[cluster] = addresses
        if kind == .tree && !existed { next.links.insert(ActiveActiveLink(cluster, via ?? local)) }
        if kind == .star, let via, via != hub {
            throw ActiveActiveTopologyError(.badShape, "a star's new cluster links its hub \(hub), not \(via)")
        }
        try next.validate(for: local)
        return next
    }

    /// The topology without `cluster` and its links (not `local` itself, not a star's
    /// hub, not a tree's inner cluster: what is left must stay connected).
    public func removing(_ cluster: String, local: String) throws(ActiveActiveTopologyError) -> ActiveActiveTopology {
        guard cluster != local, !(kind == .star && cluster == hub) else {
            throw ActiveActiveTopologyError(.cannotRemove, "\(cluster) is this cluster or the star's hub: it cannot be removed")
        }
        guard clusters[cluster] != nil else {
            throw ActiveActiveTopologyError(.unknownCluster, "\(cluster) is not in the topology")
        }
        var next = self
        next.clusters[cluster] = nil
        next.links = links.filter { $0.other(than: cluster) == nil }
        try next.validate(for: local)
        return next
    }

    static func validName(_ name: String) -> Bool { (1 ... 255).contains(name.utf8.count) }

    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }
}

/// The version of a group's topology: the HLC stamp of the change that made it
/// (`aegis aa add|remove`, `PUT /v1/aa/topology`) and the cluster where it was made.
/// Zero is a cluster's starting topology (its `--aa-topology` file), which any change
/// made in the group replaces. Versions order by (physical, logical, cluster): the
/// group's clusters adopt the highest they see (last writer wins), so one change made
/// at any cluster reaches every cluster of the group.
public struct ActiveActiveTopologyVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The stamp's physical part (ms since 1970).
    public var physical: UInt64
    /// The stamp's logical part.
    public var logical: UInt32
    /// The cluster where the change was made (empty for zero).
    public var cluster: String

    /// The version of a starting topology.
    public static let zero = ActiveActiveTopologyVersion(physical: 0, logical: 0, cluster: "")

    /// Creates a version.
    public init(physical: UInt64, logical: UInt32, cluster: String) {
        self.physical = physical
        self.logical = logical
        self.cluster = cluster
    }

    /// `true` for a starting topology's version.
    public var isZero: Bool { self == .zero }

    public static func < (a: Self, b: Self) -> Bool {
        if a.physical != b.physical { return a.physical < b.physical }
        if a.logical != b.logical { return a.logical < b.logical }
        return a.cluster.utf8.lexicographicallyPrecedes(b.cluster.utf8)
    }

    /// `physical.logical@cluster`, or `seed` for zero.
    public var description: String { isZero ? "seed" : "\(physical).\(logical)@\(cluster)" }
}

/// A topology with its version, as a batch carries it to the peer clusters.
public struct ActiveActiveVersionedTopology: Sendable, Hashable {
    /// The topology.
    public var topology: ActiveActiveTopology
    /// Its version (never zero in a batch).
    public var version: ActiveActiveTopologyVersion

    /// Creates a versioned topology.
    public init(topology: ActiveActiveTopology, version: ActiveActiveTopologyVersion) {
        self.topology = topology
        self.version = version
    }
}

/// An undirected link between two clusters (stored with the smaller ID first).
public struct ActiveActiveLink: Sendable, Hashable, CustomStringConvertible {
    /// The byte-wise smaller cluster ID.
    public let first: String
    /// The other cluster ID.
    public let second: String

    /// Creates the link between `a` and `b` (in either order).
    public init(_ a: String, _ b: String) {
        if ActiveActiveTopology.precedes(b, a) { (first, second) = (b, a) } else { (first, second) = (a, b) }
    }

    /// The end that is not `cluster`, or `nil` when `cluster` is not an end.
    public func other(than cluster: String) -> String? {
        if first == cluster { return second }
        return second == cluster ? first : nil
    }

    /// `first-second`.
    public var description: String { "\(first)-\(second)" }
}
