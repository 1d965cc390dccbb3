import AegisKV
import AegisReplication
import AegisServer
import AegisTransport
import ArgumentParser
import Foundation
import Hummingbird
import Yams

/// The topology file of `aegis serve --aa-topology FILE` and the body of
/// `PUT /v1/aa/topology` (YAML; JSON is YAML too):
///
///     kind: star            # mesh | star | tree
///     hub: hub              # a star's hub (star only)
///     clusters:             # every cluster of the group: its admin addresses
///       hub: [127.0.0.1:41101]
///       east: [127.0.0.1:41111, 127.0.0.1:41112]
///       west: []            # a cluster this one never links may list none
///     links:                # a tree's links, as pairs (tree only)
///       - [hub, east]
///
/// Every cluster may be given the same file: each links its own neighbours.
enum AATopologyFile {
    /// The largest file read.
    static let maxBytes = 1 << 20

    /// Parses a topology; `cluster` (this cluster) must pass every rule of
    /// `ActiveActiveTopology.validate(for:)`.
    static func parse(_ text: String, cluster: String) throws -> ActiveActiveTopology {
        guard text.utf8.count <= maxBytes else { throw AAAdminError("the topology is over \(maxBytes) bytes") }
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw AAAdminError("the topology is not valid YAML: \(error)") }
        guard let root = loaded as? [String: Any] else { throw AAAdminError("the topology must be a mapping with kind and clusters") }
        let unknown = Set(root.keys).subtracting(["kind", "hub", "clusters", "links"])
        guard unknown.isEmpty else { throw AAAdminError("unknown topology fields: \(unknown.sorted().joined(separator: ", "))") }
        guard let kindName = root["kind"] as? String, let kind = ActiveActiveTopologyKind(name: kindName) else {
            throw AAAdminError("kind must be mesh, star or tree")
        }
        guard let listed = root["clusters"] as? [String: Any] else {
            throw AAAdminError("clusters must map each cluster ID to its admin addresses")
        }
        var clusters: [String: [String]] = [:]
        for (id, value) in listed {
            if value is NSNull { clusters[id] = []; continue }
            guard let addresses = value as? [String] else { throw AAAdminError("cluster \(id): the addresses must be a list of host:port") }
            for address in addresses where PeerAddress(parsing: address) == nil {
                throw AAAdminError("cluster \(id): '\(address)' is not host:port")
            }
            clusters[id] = addresses
        }
        var links = Set<ActiveActiveLink>()
        if let pairs = root["links"] {
            guard let list = pairs as? [[String]], list.allSatisfy({ $0.count == 2 }) else {
                throw AAAdminError("links must be a list of [cluster, cluster] pairs")
            }
            for pair in list {
                let link = ActiveActiveLink(pair[0], pair[1])
                guard links.insert(link).inserted else { throw AAAdminError("the link \(link) is listed twice") }
            }
        }
        let topology = ActiveActiveTopology(kind: kind, clusters: clusters, hub: root["hub"] as? String ?? "", links: links)
        try topology.validate(for: cluster)
        return topology
    }

    /// Reads and parses a file.
    static func load(path: String, cluster: String) throws -> ActiveActiveTopology {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("--aa-topology: cannot read \(path): \(error)")
        }
        do { return try parse(text, cluster: cluster) } catch { throw ValidationError("--aa-topology \(path): \(error)") }
    }
}

/// `GET`/`PUT /v1/aa/topology`, `PUT`/`DELETE /v1/aa/peers/{id}`: the cluster's
/// topology, changed through its log (command 77).
enum AATopologyAdmin {
    struct Document: Codable, Sendable {
        var kind: String
        var hub: String?
        var clusters: [String: [String]]
        var links: [[String]]
        /// The clusters this one links (pulls from and serves).
        var neighbours: [String]
        /// `false` while the cluster runs on its static peers (`--aa-peer`) only.
        var replicated: Bool
        /// The topology's version: `seed` for a starting topology (the `--aa-topology`
        /// file or the static peers), else `physical.logical@cluster` of the last change
        /// made in the group (every cluster adopts the highest it sees).
        var version: String
    }

    typealias AddPeer = AAPeerRequest

    static func document(_ topology: ActiveActiveTopology, cluster: String, replicated: Bool,
                         version: ActiveActiveTopologyVersion) -> Document {
        Document(kind: topology.kind.name, hub: topology.kind == .star ? topology.hub : nil, clusters: topology.clusters,
                 links: topology.allLinks.map { [$0.first, $0.second] }.sorted { $0.lexicographicallyPrecedes($1) },
                 neighbours: topology.neighbours(of: cluster), replicated: replicated, version: version.description)
    }

    static func register(on router: Router<BasicRequestContext>, coordinator: AACoordinator,
                         authorize: @escaping @Sendable (Request) -> Response?) {
        router.get("/v1/aa/topology") { request, _ in
            if let denied = authorize(request) { return denied }
            guard let status = coordinator.runtime?.status else { return starting() }
            let topology = status.activeActiveTopology ?? coordinator.staticTopology
            return AdminResponses.json(document(topology, cluster: coordinator.clusterID,
                                                replicated: status.activeActiveTopology != nil,
                                                version: status.activeActiveTopologyVersion))
        }
        router.put("/v1/aa/topology") { request, _ in
            if let denied = authorize(request) { return denied }
            let topology: ActiveActiveTopology
            do {
                let body = try await request.body.collect(upTo: AATopologyFile.maxBytes)
                topology = try AATopologyFile.parse(String(decoding: Data(buffer: body), as: UTF8.self),
                                                    cluster: coordinator.clusterID)
            } catch {
                return AdminResponses.json(AAAdminExtension.Failure(error: "\(error)"), status: .badRequest)
            }
            return await change(coordinator, .set(topology))
        }
        router.put("/v1/aa/peers/:id") { request, context in
            if let denied = authorize(request) { return denied }
            let id = clusterID(context)
            let add: AddPeer
            do {
                let body = try await request.body.collect(upTo: AATopologyFile.maxBytes)
                add = body.readableBytes == 0 ? AddPeer() : try JSONDecoder().decode(AddPeer.self, from: Data(buffer: body))
                for address in add.addresses ?? [] where PeerAddress(parsing: address) == nil {
                    throw AAAdminError("'\(address)' is not host:port")
                }
            } catch {
                return AdminResponses.json(AAAdminExtension.Failure(
                    error: "the body must be {\"addresses\": [\"host:port\", …], \"via\": \"CLUSTER\"}: \(error)"), status: .badRequest)
            }
            return await change(coordinator, .add(cluster: id, addresses: add.addresses ?? [], via: add.via))
        }
        router.delete("/v1/aa/peers/:id") { request, context in
            if let denied = authorize(request) { return denied }
            return await change(coordinator, .remove(cluster: clusterID(context)))
        }
    }

    /// The `{id}` of the path, percent-decoded.
    private static func clusterID(_ context: BasicRequestContext) -> String {
        let raw = context.parameters.get("id") ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    private static func starting() -> Response {
        AdminResponses.json(AAAdminExtension.Failure(error: "the node is starting"), status: .serviceUnavailable)
    }

    /// Executes a change through the log: a cluster still on its static peers first
    /// records them as a mesh (so an add keeps its links); answers the new topology.
    static func change(_ coordinator: AACoordinator, _ change: ActiveActiveTopologyCommand) async -> Response {
        guard let runtime = coordinator.runtime else { return starting() }
        do {
            if runtime.status.activeActiveTopology == nil {
                let result = try await runtime.execute(.activeActiveTopology(.seed(coordinator.staticTopology)))
                if let error = result.error {
                    return AdminResponses.json(AAAdminExtension.Failure(error: "\(error)"), status: .badRequest)
                }
            }
            let result = try await runtime.execute(.activeActiveTopology(change))
            if let error = result.error {
                return AdminResponses.json(AAAdminExtension.Failure(error: "\(error)"), status: .badRequest)
            }
            // The node's status is published after the loop's turn: wait for the entry.
            let deadline = ContinuousClock.now + .seconds(2)
            while runtime.status.appliedIndex < result.index && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            let topology = runtime.status.activeActiveTopology ?? coordinator.staticTopology
            return AdminResponses.json(document(topology, cluster: coordinator.clusterID, replicated: true,
                                                version: runtime.status.activeActiveTopologyVersion))
        } catch {
            return AdminResponses.json(AAAdminExtension.Failure(error: "\(error)"), status: .serviceUnavailable)
        }
    }
}

extension AACoordinator {
    /// The topology the static peers stand for (the `--aa-topology` file, or a mesh of
    /// this cluster and its `--aa-peer`s).
    var staticTopology: ActiveActiveTopology {
        if let topologySeed { return topologySeed }
        var clusters: [String: [String]] = [clusterID: []]
        for peer in staticPeers { clusters[peer.id] = peer.addresses }
        return ActiveActiveTopology(kind: .mesh, clusters: clusters)
    }
}

extension AACommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a cluster to the group's topology: recorded through this cluster's log, then adopted by every cluster of the group with the next batch it pulls (the change's version is higher); a neighbour's link starts at once.",
            discussion: "Run it on one cluster of the group (in a tree, with --via where the new cluster attaches). Changes made at two clusters at once: the later version wins.")
        @OptionGroup var options: AdminOptions
        @Argument(help: ArgumentHelp("The cluster and its admin addresses (none for a cluster this one never links).",
                                     valueName: "id[=host:port[,host:port…]]"))
        var cluster: String
        @Option(help: "In a tree: the cluster the new one links (default: this cluster).") var via: String?

        func run() async throws {
            let parts = cluster.split(separator: "=", maxSplits: 1).map(String.init)
            guard let id = parts.first, !id.isEmpty else { throw ValidationError("give the cluster as ID=host:port[,…]") }
            let addresses = parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : []
            let path = "/v1/aa/peers/\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id)"
            let data = try await options.request("PUT", path, body: AATopologyAdmin.AddPeer(addresses: addresses, via: via))
            try Topology.show(data, json: options.json)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a cluster from the group's topology (recorded here, adopted by every other cluster of the group): its links stop and garbage collection no longer waits for it.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The cluster ID.") var cluster: String

        func run() async throws {
            let path = "/v1/aa/peers/\(cluster.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cluster)"
            try Topology.show(try await options.request("DELETE", path), json: options.json)
        }
    }

    struct Topology: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the cluster's topology, or replace it with a file (--set FILE).")
        @OptionGroup var options: AdminOptions
        @Option(help: "A topology file (YAML, as for --aa-topology) to record.") var set: String?

        func run() async throws {
            let data: Data
            if let set {
                let text = try String(contentsOfFile: set, encoding: .utf8)
                data = try await options.request("PUT", "/v1/aa/topology", rawBody: Data(text.utf8), contentType: "application/yaml")
            } else {
                data = try await options.request("GET", "/v1/aa/topology")
            }
            try Self.show(data, json: options.json)
        }

        static func show(_ data: Data, json: Bool) throws {
            if json { return print(String(decoding: data, as: UTF8.self), terminator: "") }
            let document = try JSONDecoder().decode(AATopologyAdmin.Document.self, from: data)
            print("\(document.kind)\(document.hub.map { " (hub \($0))" } ?? "")\(document.replicated ? "" : " (static peers, not recorded yet)")")
            print("clusters: " + document.clusters.keys.sorted().map { "\($0) [\(document.clusters[$0]?.joined(separator: ",") ?? "")]" }
                .joined(separator: ", "))
            print("links: " + document.links.map { $0.joined(separator: "-") }.joined(separator: ", "))
            print("neighbours: " + document.neighbours.joined(separator: ", "))
            print("version: " + document.version)
        }
    }
}
