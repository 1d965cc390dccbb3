import AegisOperations
import AegisServer
import Foundation

// The seed's active-active API (#17 item 8) over this implementation: a "node" is an
// active-active cluster reached through its admin API, a replica is a peer cluster.
//
//     let replication = ActiveActiveReplication(nodeID: "region-a", config: config)
//     try await replication.start()
//     let replica = ReplicaNode(name: "replica1", address: "replica1.example.com:5000",
//                               priority: 100, state: .active)
//     try await replication.addReplica(replica)
//     let event = ReplicationEvent(sourceNode: "region-a", targetNode: replica.id, payload: [1, 2, 3, 4, 5], sequence: 1)
//     try await replication.replicate(event)
//
// `addReplica` links both clusters through their logs (command 77 on each: a mesh
// link, `PUT /v1/aa/peers/{id}`); `replicate` writes the event's payload in this
// cluster (a key under `config.keyPrefix`) and waits until the replica's cluster
// holds it, measuring the replication lag.

/// How `ActiveActiveReplication` reaches its cluster (the seed's `ReplicationConfig`).
struct ReplicationConfig: Sendable {
    /// This cluster's admin addresses (tried in order).
    var adminAddresses: [String] = [DevDefaults.adminAddress]
    /// Token and TLS for the admin APIs (of this cluster and of the replicas).
    var security = ToolSecurityOptions()
    /// Where replicated events are written: `<prefix><source>/<sequence>`.
    var keyPrefix = "aa:event:"
    /// How long `start` and `replicate` wait (seconds).
    var timeoutSeconds: Double = 30

    /// The local `aegis dev` cluster's first node.
    static let `default` = ReplicationConfig()
}

/// The seed's `ReplicationState` of a replica.
enum ReplicationState: String, Sendable, Hashable, Codable {
    case active, paused, syncing, failed
}

/// A replica: a peer cluster (the seed's `ReplicaNode`). `name` is its cluster ID,
/// `address` its admin address.
struct ReplicaNode: Sendable, Hashable {
    var id = UUID()
    var name: String
    var address: String
    var priority = 100
    var state = ReplicationState.active
    var lastReplicatedAt: Date?
    var lagMs: UInt64?
}

/// One payload to replicate (the seed's `ReplicationEvent`).
struct ReplicationEvent: Sendable, Hashable {
    /// The source cluster (this replication's node ID).
    var sourceNode: String
    /// The replica that must hold it (`ReplicaNode.id`).
    var targetNode: UUID
    var payload: [UInt8]
    var sequence: UInt64
}

/// The seed's `ActiveActiveReplication`, Swift-cased, driving real clusters.
final class ActiveActiveReplication: @unchecked Sendable {
    let nodeID: String
    let config: ReplicationConfig
    private let lock = NSLock()
    private var replicaTable: [UUID: ReplicaNode] = [:]
    private var started = false

    init(nodeID: String, config: ReplicationConfig) {
        self.nodeID = nodeID
        self.config = config
    }

    /// The replicas added, by ID.
    var replicas: [UUID: ReplicaNode] { lock.withLock { replicaTable } }

    /// Waits until this cluster answers with active-active enabled and its ID is `nodeID`.
    func start() async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(config.timeoutSeconds * 1000))
        var last = "no answer"
        while ContinuousClock.now < deadline {
            for address in config.adminAddresses {
                do {
                    let document = try JSONDecoder().decode(AADocument.self, from: try await options(address).request("GET", "/v1/aa"))
                    guard document.clusterID == nodeID else {
                        throw ToolError("\(address) is cluster \(document.clusterID), not \(nodeID)")
                    }
                    if document.enabled {
                        lock.withLock { started = true }
                        return
                    }
                    last = "active-active is not enabled yet"
                } catch let error as ToolError where error.description.contains("not \(nodeID)") {
                    throw error
                } catch {
                    last = "\(error)"
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ToolError("cluster \(nodeID) did not start active-active within \(config.timeoutSeconds) s: \(last)")
    }

    /// Links this cluster and the replica's, both ways, through their logs.
    func addReplica(_ replica: ReplicaNode) async throws {
        guard lock.withLock({ started }) else { throw ToolError("call start() first") }
        _ = try await anyNode { try await $0.request("PUT", "/v1/aa/peers/\(Self.escape(replica.name))",
                                                     body: AATopologyAdmin.AddPeer(addresses: [replica.address])) }
        _ = try await options(replica.address).request("PUT", "/v1/aa/peers/\(Self.escape(nodeID))",
                                                       body: AATopologyAdmin.AddPeer(addresses: config.adminAddresses))
        lock.withLock { replicaTable[replica.id] = replica }
    }

    /// Writes the event's payload in this cluster and waits until the target replica's
    /// cluster holds it; returns the replica with its lag and time updated.
    @discardableResult
    func replicate(_ event: ReplicationEvent) async throws -> ReplicaNode {
        guard var replica = lock.withLock({ replicaTable[event.targetNode] }) else {
            throw ToolError("no replica \(event.targetNode): add it first")
        }
        guard event.sourceNode == nodeID else { throw ToolError("the event's source is \(event.sourceNode), not \(nodeID)") }
        let key = "\(config.keyPrefix)\(event.sourceNode)/\(event.sequence)"
        let path = "/v1/kv/\(Self.escape(key))"
        let written = ContinuousClock.now
        _ = try await anyNode { try await $0.request("PUT", path, rawBody: Data(event.payload)) }
        let deadline = written + .milliseconds(Int64(config.timeoutSeconds * 1000))
        let remote = try options(replica.address)
        var seen = "nothing read yet"
        while ContinuousClock.now < deadline {
            var read: [UInt8]?
            do {
                read = Self.bytes(of: try JSONDecoder().decode(ValueProbe.self, from: try await remote.request("GET", path + "?stale=true")))
                seen = "\(read ?? [])"
            } catch {
                seen = "\(error)"
            }
            if read == event.payload {
                replica.lagMs = UInt64(DrOrchestrator.seconds(ContinuousClock.now - written) * 1000)
                replica.lastReplicatedAt = Date()
                replica.state = .active
                lock.withLock { replicaTable[replica.id] = replica }
                return replica
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        replica.state = .failed
        lock.withLock { replicaTable[replica.id] = replica }
        throw ToolError("event \(event.sequence) did not reach \(replica.name) within \(config.timeoutSeconds) s (last read: \(seen))")
    }

    private func options(_ address: String) throws -> AdminOptions {
        var options = try AdminOptions.parse([])
        options.admin = address
        options.security = config.security
        return options
    }

    /// Runs `body` against this cluster's admin addresses until one answers.
    private func anyNode(_ body: (AdminOptions) async throws -> Data) async throws -> Data {
        var last: any Error = ToolError("no admin address for \(nodeID)")
        for address in config.adminAddresses {
            do { return try await body(try options(address)) } catch { last = error }
        }
        throw last
    }

    /// The value fields of a `GET /v1/kv/…` answer (`KeyValueDocument`).
    struct ValueProbe: Decodable {
        var value: String?
        var valueBase64: String?
    }

    static func bytes(of document: ValueProbe) -> [UInt8]? {
        if let text = document.value { return Array(text.utf8) }
        return document.valueBase64.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
    }

    static func escape(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text }
}
