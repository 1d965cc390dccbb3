public import AegisServer
public import Foundation

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
public struct ReplicationConfig: Sendable {
    /// This cluster's admin addresses (tried in order).
    public var adminAddresses: [String]
    /// Token and TLS for the admin APIs (of this cluster and of the replicas).
    public var access: AdminAccess
    /// Where replicated events are written: `<prefix><source>/<sequence>`.
    public var keyPrefix: String
    /// How long `start` and `replicate` wait (seconds).
    public var timeoutSeconds: Double

    /// Settings; the defaults reach the local `aegis dev` cluster's first node.
    public init(adminAddresses: [String] = [DevDefaults.adminAddress], access: AdminAccess = AdminAccess(),
                keyPrefix: String = "aa:event:", timeoutSeconds: Double = 30) {
        self.adminAddresses = adminAddresses
        self.access = access
        self.keyPrefix = keyPrefix
        self.timeoutSeconds = timeoutSeconds
    }

    /// The local `aegis dev` cluster's first node.
    public static let `default` = ReplicationConfig()
}

/// The seed's `ReplicationState` of a replica.
public enum ReplicationState: String, Sendable, Hashable, Codable {
    case active, paused, syncing, failed
}

/// A replica: a peer cluster (the seed's `ReplicaNode`). `name` is its cluster ID,
/// `address` its admin address.
public struct ReplicaNode: Sendable, Hashable {
    public var id: UUID
    public var name: String
    public var address: String
    public var priority: Int
    public var state: ReplicationState
    /// When an event last reached it, and how long that took.
    public var lastReplicatedAt: Date?
    public var lagMs: UInt64?

    public init(id: UUID = UUID(), name: String, address: String, priority: Int = 100, state: ReplicationState = .active,
                lastReplicatedAt: Date? = nil, lagMs: UInt64? = nil) {
        self.id = id
        self.name = name
        self.address = address
        self.priority = priority
        self.state = state
        self.lastReplicatedAt = lastReplicatedAt
        self.lagMs = lagMs
    }
}

/// One payload to replicate (the seed's `ReplicationEvent`).
public struct ReplicationEvent: Sendable, Hashable {
    /// The source cluster (this replication's node ID).
    public var sourceNode: String
    /// The replica that must hold it (`ReplicaNode.id`).
    public var targetNode: UUID
    public var payload: [UInt8]
    public var sequence: UInt64

    public init(sourceNode: String, targetNode: UUID, payload: [UInt8], sequence: UInt64) {
        self.sourceNode = sourceNode
        self.targetNode = targetNode
        self.payload = payload
        self.sequence = sequence
    }
}

/// The seed's `ActiveActiveReplication`, Swift-cased, driving real clusters.
public final class ActiveActiveReplication: @unchecked Sendable {
    public let nodeID: String
    public let config: ReplicationConfig
    private let lock = NSLock()
    private var replicaTable: [UUID: ReplicaNode] = [:]
    private var started = false

    public init(nodeID: String, config: ReplicationConfig) {
        self.nodeID = nodeID
        self.config = config
    }

    /// The replicas added, by ID.
    public var replicas: [UUID: ReplicaNode] { lock.withLock { replicaTable } }

    /// The fields of `GET /v1/aa` this API reads.
    private struct Enabled: Decodable {
        var clusterID: String
        var enabled: Bool
    }

    /// Waits until this cluster answers with active-active enabled and its ID is `nodeID`.
    public func start() async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(config.timeoutSeconds * 1000))
        var last = "no answer"
        while ContinuousClock.now < deadline {
            for address in config.adminAddresses {
                let document: Enabled
                do {
                    document = try JSONDecoder().decode(Enabled.self, from: try await config.access.request("GET", "/v1/aa", at: address))
                } catch {
                    last = "\(error)"
                    continue
                }
                guard document.clusterID == nodeID else {
                    throw AdminAPIError("\(address) is cluster \(document.clusterID), not \(nodeID)")
                }
                if document.enabled {
                    lock.withLock { started = true }
                    return
                }
                last = "active-active is not enabled yet"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw AdminAPIError("cluster \(nodeID) did not start active-active within \(config.timeoutSeconds) s: \(last)")
    }

    /// Links this cluster and the replica's, both ways, through their logs.
    public func addReplica(_ replica: ReplicaNode) async throws {
        guard lock.withLock({ started }) else { throw AdminAPIError("call start() first") }
        let toReplica = try JSONEncoder().encode(AAPeerRequest(addresses: [replica.address]))
        _ = try await anyNode { try await config.access.request("PUT", "/v1/aa/peers/\(percentEscaped(replica.name))", at: $0,
                                                                body: toReplica) }
        _ = try await config.access.request("PUT", "/v1/aa/peers/\(percentEscaped(nodeID))", at: replica.address,
                                            body: try JSONEncoder().encode(AAPeerRequest(addresses: config.adminAddresses)))
        lock.withLock { replicaTable[replica.id] = replica }
    }

    /// Writes the event's payload in this cluster and waits until the target replica's
    /// cluster holds it; returns the replica with its lag and time updated.
    @discardableResult
    public func replicate(_ event: ReplicationEvent) async throws -> ReplicaNode {
        guard var replica = lock.withLock({ replicaTable[event.targetNode] }) else {
            throw AdminAPIError("no replica \(event.targetNode): add it first")
        }
        guard event.sourceNode == nodeID else { throw AdminAPIError("the event's source is \(event.sourceNode), not \(nodeID)") }
        let path = "/v1/kv/\(percentEscaped(key(of: event)))"
        let written = ContinuousClock.now
        _ = try await anyNode { try await config.access.request("PUT", path, at: $0, body: Data(event.payload),
                                                                contentType: "application/octet-stream") }
        let deadline = written + .milliseconds(Int64(config.timeoutSeconds * 1000))
        var seen = "nothing read yet"
        while ContinuousClock.now < deadline {
            var read: [UInt8]?
            do {
                read = try JSONDecoder().decode(KeyValueDocument.self,
                                                from: try await config.access.request("GET", path + "?stale=true", at: replica.address)).bytes
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
        throw AdminAPIError("event \(event.sequence) did not reach \(replica.name) within \(config.timeoutSeconds) s (last read: \(seen))")
    }

    /// The key an event is written under: `<keyPrefix><source>/<sequence>`.
    public func key(of event: ReplicationEvent) -> String { "\(config.keyPrefix)\(event.sourceNode)/\(event.sequence)" }

    /// Runs `body` against this cluster's admin addresses until one answers.
    private func anyNode(_ body: (String) async throws -> Data) async throws -> Data {
        var last: any Error = AdminAPIError("no admin address for \(nodeID)")
        for address in config.adminAddresses {
            do { return try await body(address) } catch { last = error }
        }
        throw last
    }
}
