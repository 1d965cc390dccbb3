import AegisCluster
import AegisKV
import AegisRaft
import AegisReplication
import Foundation
import Testing

@Suite(.serialized) struct FailoverExampleTests {
    /// The seed's "Automatic Failover" example, Swift-cased, over an in-process cluster of
    /// three real nodes (TCP on loopback, fsync): the leader fails, the real failure
    /// detector of a survivor sees it down, Raft elects a new leader, and the replica the
    /// `PromotionStrategy` chooses is promoted by a leadership transfer.
    @Test func test_seedAutomaticFailoverExample_overALocalCluster() async throws {
        let dir = temporaryDirectory("failover")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        let first = try await cluster.waitForLeader()
        let failedID = cluster.members[first].id
        let survivors = cluster.members.indices.filter { $0 != first }
        let node = try #require(cluster.members[survivors[0]].runtime)
        _ = try await write(node, "before", "failover")

        // --- the seed's example ---
        let config = FailoverConfig.default
        // Start failure detection
        let detector = Failover.FailureDetector(config, node: node)
        try await detector.start()
        // Setup leader election
        let nodeID = node.configuration.nodeID
        let election = Failover.LeaderElection(nodeID, priority: 100, config, node: node)
        // The leader fails.
        await cluster.stop(first)
        #expect(try await detector.waitForFailure(of: failedID) == failedID)
        // On failure, start election
        let result = try await election.startElection()
        print("New leader elected: \(result.winnerID)")
        // --- end of the example ---

        #expect(result.winnerID != failedID && survivors.map { cluster.members[$0].id }.contains(result.winnerID))
        #expect(detector.failedNodes == [failedID])
        // Promotion: the strategy names the survivor that does not lead; a transfer makes it leader.
        let target = try #require(survivors.map { cluster.members[$0].id }.first { $0 != result.winnerID })
        let running = survivors.compactMap { cluster.members[$0].runtime }
        let promotion = Failover.ReplicaPromotion(FailoverConfig(promotionStrategy: .specific(target)), nodes: running)
        #expect(try promotion.candidate() == target)
        #expect(try await promotion.promote() == target)
        #expect(cluster.members[try await cluster.waitForLeader()].id == target)
        // The failed node is not a candidate: it is down.
        let refused = Failover.ReplicaPromotion(FailoverConfig(promotionStrategy: .specific(failedID)), nodes: running)
        #expect(throws: FailoverError.self) { try refused.candidate() }
        // Nothing acknowledged was lost, and the cluster takes writes.
        let reader = try #require(cluster.members[survivors[1]].runtime)
        #expect(try await reader.read([Key("before")]).first??.value == Array("failover".utf8))
        _ = try await write(reader, "after", "failover")
        await cluster.shutdown()
    }
}
