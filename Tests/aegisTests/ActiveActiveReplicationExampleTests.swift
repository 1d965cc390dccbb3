import AegisOperations
import AegisServer
@testable import aegis
import Foundation
import Testing

/// Two one-node active-active clusters on loopback, started without peers (`aegis serve
/// --active-active`): "region-a" and "replica1". Ports 23510+ (below the ephemeral range, 32768-60999) (RESP +0/+1, admin
/// +10/+11, peer +20/+21).
final class AAPair: @unchecked Sendable {
    static let token = "aa-replication-test-token"
    let aegis: String
    let work: URL
    private var processes: [Process] = []

    func admin(_ k: Int) -> String { "127.0.0.1:\(23520 + k)" }

    init(aegis: String) throws {
        self.aegis = aegis
        work = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-aa-replication-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try (Self.token + "\n").write(to: work.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: work.appendingPathComponent("token").path)
        for (k, cluster) in ["region-a", "replica1"].enumerated() {
            processes.append(try startOneNodeCluster(aegis: aegis, work: work, cluster: cluster, resp: 23510 + k,
                                                     admin: admin(k), peer: 23530 + k, extra: ["--active-active"]))
        }
    }

    /// The library's access to the admin APIs (plain HTTP on loopback, the pair's token).
    var access: AdminAccess { AdminAccess(token: Self.token) }

    func stopAll() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        if ProcessInfo.processInfo.environment["AEGIS_KEEP"] == nil { try? FileManager.default.removeItem(at: work) }
    }
}

@Suite(.serialized) struct ActiveActiveReplicationExampleTests {
    /// The seed's active-active example, Swift-cased, over two real clusters: the event's
    /// payload written in region-a is read back in replica1.
    @Test(.enabled(if: DRPair.executable() != nil, "aegis is not built (swift build --build-tests)"))
    func test_seedActiveActiveExample_replicatesAnEventToTheReplica() async throws {
        let pair = try AAPair(aegis: try #require(DRPair.executable()))
        defer { pair.stopAll() }
        // Generous: under the parallel test run on a loaded machine starting two processes can take long.
        let config = ReplicationConfig(adminAddresses: [pair.admin(0)], access: pair.access, timeoutSeconds: 90)
        let nodeID = "region-a"

        // --- the seed's example ---
        let replication = ActiveActiveReplication(nodeID: nodeID, config: config)
        try await replication.start()
        let replica = ReplicaNode(id: UUID(), name: "replica1", address: pair.admin(1), priority: 100, state: .active,
                                  lastReplicatedAt: nil, lagMs: nil)
        try await replication.addReplica(replica)
        let event = ReplicationEvent(sourceNode: nodeID, targetNode: replica.id, payload: [1, 2, 3, 4, 5], sequence: 1)
        try await replication.replicate(event)
        // --- end of the example ---

        let updated = try #require(replication.replicas[replica.id])
        #expect(updated.lastReplicatedAt != nil && updated.lagMs != nil && updated.state == .active)
        // Read back in the replica's cluster, through its own admin API.
        let data = try await pair.access.request("GET", "/v1/kv/\(percentEscaped(replication.key(of: event)))", at: pair.admin(1))
        #expect(try JSONDecoder().decode(KeyValueDocument.self, from: data).bytes == [1, 2, 3, 4, 5])
        // Both clusters record the link in their topology (command 77).
        let topology = try JSONDecoder().decode(AATopologyAdmin.Document.self,
                                                from: try await pair.access.request("GET", "/v1/aa/topology", at: pair.admin(1)))
        #expect(topology.neighbours == ["region-a"] && topology.replicated)
        // An event for a replica never added is refused, and so is one from another source.
        await #expect(throws: AdminAPIError.self) {
            try await replication.replicate(ReplicationEvent(sourceNode: nodeID, targetNode: UUID(), payload: [9], sequence: 2))
        }
        await #expect(throws: AdminAPIError.self) {
            try await replication.replicate(ReplicationEvent(sourceNode: "other", targetNode: replica.id, payload: [9], sequence: 3))
        }
    }
}
