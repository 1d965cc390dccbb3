import AegisRaft

// Command 77 (activeActiveTopology, encoding version 4) and snapshot section 7: a
// cluster's replicated active-active topology (ActiveActiveTopology.swift). All
// integers are unsigned LEB128 varints; texts are a varint length then UTF-8 bytes.
//
//     activeActiveTopology (77)  operation byte, then
//       0 set                    a topology (replaces the whole topology)
//       1 add                    cluster ID (1...255 bytes), varint address count
//                                (<= 16), the addresses (1...255 bytes each), via
//                                flag byte (0 or 1), then the via cluster ID if 1
//       2 remove                 cluster ID (1...255 bytes)
//       3 seed                   a topology: a cluster's starting topology (its
//                                --aa-topology file), recorded with version zero and
//                                only while the cluster has none
//     topology                   kind byte (0 mesh, 1 star, 2 tree), hub (0...255
//                                bytes, empty unless a star), varint cluster count
//                                (1...64), per cluster in strictly ascending ID
//                                order: ID, varint address count (<= 16), addresses;
//                                varint link count (0 unless a tree), per link in
//                                strictly ascending (first, second) order: first,
//                                second (first < second, byte-wise)
//
//     topology version           varint stamp physical (ms), varint stamp logical
//                                (<= 2^32 - 1), cluster ID (0...255 bytes; empty only
//                                in version zero)
//
// Section 7 is a topology as above, then optionally (absent in sections written before
// versions) its topology version (written only when the cluster has a topology).
// Applying checks the result with `ActiveActiveTopology.validate(for:)` against this
// cluster's ID: a refused change (KVError.activeActiveTopology) changes nothing. Set,
// add and remove give the topology a new version: the stamp of the cluster's next
// HLC tick (deterministic: the apply clock) and this cluster's ID. Batches carry a
// versioned topology; a receiver adopts one whose version is higher than its own and
// that lists the receiver (`StateMachine.adoptActiveActiveTopology`).

/// A change of the cluster's active-active topology (command 77).
public enum ActiveActiveTopologyCommand: Sendable, Hashable {
    /// Replaces the whole topology.
    case set(ActiveActiveTopology)
    /// Adds a cluster (or replaces its addresses), linked in a tree to `via` (default:
    /// this cluster).
    case add(cluster: String, addresses: [String], via: String?)
    /// Removes a cluster and its links.
    case remove(cluster: String)
    /// Records a starting topology (version zero) when the cluster has none; a no-op
    /// otherwise.
    case seed(ActiveActiveTopology)
}

extension ActiveActiveTopology {
    /// Appends the topology's encoding.
    func append(to bytes: inout [UInt8]) {
        bytes.append(kind.rawValue)
        bytes.appendLengthPrefixed(Array(hub.utf8))
        bytes.appendVarint(UInt64(clusters.count))
        for id in clusters.keys.sorted(by: Self.precedes) {
            bytes.appendLengthPrefixed(Array(id.utf8))
            bytes.appendAddresses(clusters[id] ?? [])
        }
        let ordered = links.sorted { ($0.first, $0.second) < ($1.first, $1.second) }
        bytes.appendVarint(UInt64(ordered.count))
        for link in ordered {
            bytes.appendLengthPrefixed(Array(link.first.utf8))
            bytes.appendLengthPrefixed(Array(link.second.utf8))
        }
    }

    /// The section 7 body (the topology's encoding, then its version).
    func sectionBody(version: ActiveActiveTopologyVersion) -> [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        bytes.appendTopologyVersion(version)
        return bytes
    }

    /// Reads a section 7 body: the topology and its version (zero when absent).
    static func fromSection(_ bytes: [UInt8]) throws(KVError) -> ActiveActiveVersionedTopology {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> ActiveActiveVersionedTopology in
                var reader = ByteReader(raw)
                let topology = try reader.readTopology()
                let version = reader.remaining > 0 ? try reader.readTopologyVersion() : .zero
                guard reader.remaining == 0 else { throw .malformedCommand("\(reader.remaining) unexpected bytes at the end") }
                return ActiveActiveVersionedTopology(topology: topology, version: version)
            }
        }
        do {
            return try decoded.get()
        } catch {
            throw .malformedSnapshot("active-active topology section: \(error)")
        }
    }
}

extension ActiveActiveTopologyCommand {
    /// Appends the command's body (after the version and type bytes).
    func append(to bytes: inout [UInt8]) {
        switch self {
        case .set(let topology):
            bytes.append(0)
            topology.append(to: &bytes)
        case .add(let cluster, let addresses, let via):
            bytes.append(1)
            bytes.appendLengthPrefixed(Array(cluster.utf8))
            bytes.appendAddresses(addresses)
            if let via {
                bytes.append(1)
                bytes.appendLengthPrefixed(Array(via.utf8))
            } else {
                bytes.append(0)
            }
        case .remove(let cluster):
            bytes.append(2)
            bytes.appendLengthPrefixed(Array(cluster.utf8))
        case .seed(let topology):
            bytes.append(3)
            topology.append(to: &bytes)
        }
    }
}

extension Array where Element == UInt8 {
    mutating func appendTopologyVersion(_ version: ActiveActiveTopologyVersion) {
        appendVarint(version.physical)
        appendVarint(UInt64(version.logical))
        appendLengthPrefixed(Array(version.cluster.utf8))
    }

    mutating func appendAddresses(_ addresses: [String]) {
        appendVarint(UInt64(addresses.count))
        for address in addresses { appendLengthPrefixed(Array(address.utf8)) }
    }
}

extension ByteReader {
    /// Reads a command 77 body.
    @usableFromInline mutating func readTopologyCommand() throws(KVError) -> ActiveActiveTopologyCommand {
        guard let operation = readByte() else { throw .malformedCommand("truncated before the topology operation") }
        switch operation {
        case 0:
            return .set(try readTopology())
        case 1:
            let cluster = try readClusterName("added cluster ID")
            let addresses = try readAddresses("added cluster")
            guard let flag = readByte(), flag <= 1 else { throw .malformedCommand("missing or unknown via flag") }
            return .add(cluster: cluster, addresses: addresses, via: flag == 1 ? try readClusterName("via cluster ID") : nil)
        case 2:
            return .remove(cluster: try readClusterName("removed cluster ID"))
        case 3:
            return .seed(try readTopology())
        default:
            throw .malformedCommand("unknown topology operation \(operation)")
        }
    }

    mutating func readTopologyVersion() throws(KVError) -> ActiveActiveTopologyVersion {
        let physical = try readCommandVarint("topology version physical")
        let logical = try readCommandVarint("topology version logical")
        guard let logical32 = UInt32(exactly: logical) else {
            throw .malformedCommand("topology version logical \(logical) is above 2^32 - 1")
        }
        let cluster = try readText("topology version cluster", maxBytes: StreamBatch.maxSourceSize, allowEmpty: true)
        guard cluster.isEmpty == (physical == 0 && logical == 0) else {
            throw .malformedCommand("a topology version names its cluster exactly when it is not zero")
        }
        return ActiveActiveTopologyVersion(physical: physical, logical: logical32, cluster: cluster)
    }

    mutating func readClusterName(_ name: String) throws(KVError) -> String {
        try readText(name, maxBytes: StreamBatch.maxSourceSize)
    }

    mutating func readAddresses(_ name: String) throws(KVError) -> [String] {
        let count = try readCount("\(name) address count", minimumBytesEach: 2)
        guard count <= ActiveActiveTopology.maxAddresses else {
            throw .malformedCommand("\(name): \(count) addresses, more than \(ActiveActiveTopology.maxAddresses)")
        }
        var addresses: [String] = []
        for _ in 0 ..< count { addresses.append(try readClusterName("\(name) address")) }
        return addresses
    }

    mutating func readTopology() throws(KVError) -> ActiveActiveTopology {
        guard let kindByte = readByte(), let kind = ActiveActiveTopologyKind(rawValue: kindByte) else {
            throw .malformedCommand("missing or unknown topology kind")
        }
        let hub = try readText("hub", maxBytes: StreamBatch.maxSourceSize, allowEmpty: true)
        let count = try readCount("topology cluster count", minimumBytesEach: 3)
        guard (1 ... ActiveActiveTopology.maxClusters).contains(count) else {
            throw .malformedCommand("a topology has 1 to \(ActiveActiveTopology.maxClusters) clusters, not \(count)")
        }
        var clusters: [String: [String]] = [:]
        var previous: String?
        for _ in 0 ..< count {
            let id = try readAscendingClusterID("topology cluster", after: &previous)
            clusters[id] = try readAddresses("cluster \(id)")
        }
        let linkCount = try readCount("topology link count", minimumBytesEach: 4)
        var links = Set<ActiveActiveLink>()
        var previousLink: ActiveActiveLink?
        for _ in 0 ..< linkCount {
            let first = try readClusterName("link end")
            let second = try readClusterName("link end")
            let link = ActiveActiveLink(first, second)
            guard link.first == first, first != second else {
                throw .malformedCommand("the link \(first)-\(second) is not in (smaller, greater) order")
            }
            if let previousLink, !((previousLink.first, previousLink.second) < (first, second)) {
                throw .malformedCommand("the links are not in strictly ascending order at \(link)")
            }
            previousLink = link
            links.insert(link)
        }
        guard kind == .star || hub.isEmpty else { throw .malformedCommand("a \(kind.name) has no hub") }
        guard kind == .tree || links.isEmpty else { throw .malformedCommand("a \(kind.name) has no listed links") }
        return ActiveActiveTopology(kind: kind, clusters: clusters, hub: hub, links: links)
    }
}

// MARK: Applying

extension StateMachine {
    /// The cluster's replicated active-active topology (`nil` until one is set).
    public var activeActiveTopology: ActiveActiveTopology? { activeActiveTopologyState }

    /// The version of the cluster's topology (zero for a starting topology or none).
    public var activeActiveTopologyVersion: ActiveActiveTopologyVersion { activeActiveTopologyVersionState }

    /// The topology a batch to the peers carries: the current one when a change made
    /// in the group set it.
    var shippedActiveActiveTopology: ActiveActiveVersionedTopology? {
        guard let topology = activeActiveTopologyState, !activeActiveTopologyVersionState.isZero else { return nil }
        return ActiveActiveVersionedTopology(topology: topology, version: activeActiveTopologyVersionState)
    }

    /// Adopts the topology a peer's batch carries when its version is higher than this
    /// cluster's and it lists this cluster (a topology that removed this cluster, or
    /// one that does not validate, is ignored). Returns `true` when adopted.
    @discardableResult
    mutating func adoptActiveActiveTopology(_ offered: ActiveActiveVersionedTopology?) -> Bool {
        guard let offered, offered.version > activeActiveTopologyVersionState else { return false }
        do {
            try offered.topology.validate(for: replica.rawValue)
        } catch {
            return false
        }
        activeActiveTopologyState = offered.topology
        activeActiveTopologyVersionState = offered.version
        return true
    }

    /// Applies command 77: the changed topology must pass `validate(for:)` for this
    /// cluster, or nothing changes.
    mutating func applyActiveActiveTopology(_ command: ActiveActiveTopologyCommand, at index: LogIndex) -> CommandResult {
        let own = replica.rawValue
        let current = activeActiveTopologyState ?? ActiveActiveTopology(kind: .mesh, clusters: [own: []])
        let next: ActiveActiveTopology
        do {
            switch command {
            case .seed(let topology):
                guard activeActiveTopologyState == nil else { return CommandResult(index: index, revision: revision) }
                try topology.validate(for: own)
                activeActiveTopologyState = topology
                activeActiveTopologyVersionState = .zero
                revision += 1
                return CommandResult(index: index, revision: revision)
            case .set(let topology):
                try topology.validate(for: own)
                next = topology
            case .add(let cluster, let addresses, let via):
                next = try current.adding(cluster, addresses: addresses, via: via, local: own)
            case .remove(let cluster):
                next = try current.removing(cluster, local: own)
            }
        } catch {
            return failure(.activeActiveTopology(error.message), at: index)
        }
        activeActiveTopologyState = next
        let stamp = nextActiveActiveStamp()
        activeActiveTopologyVersionState = ActiveActiveTopologyVersion(physical: stamp.physical, logical: stamp.logical,
                                                                       cluster: own)
        revision += 1
        return CommandResult(index: index, revision: revision)
    }
}
