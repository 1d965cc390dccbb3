import AegisRaft
import AegisTestKit
import Testing

@Suite struct TransferTests {
    // Thesis §3.10: the leader brings the target up to date, sends TimeoutNow, and
    // the target wins the next term at once (voters ignore their lease for it).
    @Test func test_transfer_catchesUpTargetThenTimeoutNow() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        env.isolate("n3")
        try env.propose("n1", "x")
        try env.stabilize()
        env.heal()
        try env.with("n1") { try $0.transferLeadership(to: "n3") }
        #expect(throws: RaftError.self) { try env.propose("n1", "refused during transfer") }
        var lines: [String] = []
        for _ in 0..<10 where !env.pending.isEmpty { lines += try env.deliver() }
        #expect(lines.contains("n1->n3 TimeoutNow term=1"))
        #expect(lines.contains("n3->n1 Vote term=2 last=(2,1)"))
        #expect(try env.core("n3").role == .leader)
        #expect(try env.core("n1").leader == "n3")
    }

    // A transfer to an unreachable target gives up after an election timeout and the
    // leader accepts proposals again.
    @Test func test_transfer_abortsAfterElectionTimeout() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        env.isolate("n3")
        try env.with("n1") { try $0.transferLeadership(to: "n3") }
        #expect(try env.core("n1").leadTransferee == "n3")
        for _ in 0..<10 { try env.tick("n1"); try env.deliver() }
        #expect(try env.core("n1").leadTransferee == nil)
        #expect(try env.core("n1").role == .leader)
        try env.propose("n1", "accepted again")
    }

    // Failback: a caught-up voter of higher priority receives leadership.
    @Test func test_priority_leadershipMovesToPreferredNode() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        try env.with("n1") { $0.setPriority(10, of: "n2") }
        for _ in 0..<12 {
            try env.tick("n1")
            try env.stabilize()
        }
        #expect(try env.core("n2").role == .leader)
    }
}

@Suite struct ReadIndexTests {
    // Thesis §6.4: the leader confirms leadership with a heartbeat round before a read
    // is served at its commit index.
    @Test func test_readIndex_leaderConfirmsWithHeartbeatRound() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        try env.with("n1") { try $0.readIndex(context: 7) }
        #expect(env.readStates["n1", default: []].isEmpty)
        #expect(try env.deliver() == ["n1->n2 Heartbeat term=1 commit=1 ctx=1", "n1->n3 Heartbeat term=1 commit=1 ctx=1"])
        try env.deliver()
        #expect(env.readStates["n1"] == [ReadState(index: 1, context: 7)])
    }

    // A follower asks the leader for the read index.
    @Test func test_readIndex_followerGetsIndexFromLeader() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        try env.propose("n1", "x")
        try env.stabilize()
        try env.with("n2") { try $0.readIndex(context: 9) }
        try env.stabilize()
        #expect(env.readStates["n2"] == [ReadState(index: 2, context: 9)])
    }

    // A deposed leader cut off from the majority cannot confirm its leadership, so it
    // never serves a read (which could be stale: the new leader accepted writes).
    @Test func test_readIndex_deposedLeaderServesNoRead() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        env.isolate("n1")
        for _ in 0..<30 {
            try env.tick("n2")
            try env.tick("n3")
            try env.stabilize()
        }
        #expect(try env.core("n2").role == .leader || (try env.core("n3").role == .leader))
        let newLeader: NodeID = try env.core("n2").role == .leader ? "n2" : "n3"
        try env.propose(newLeader, "new value")
        try env.stabilize()
        #expect(try env.core("n1").role == .leader)  // has not noticed yet
        try env.with("n1") { try $0.readIndex(context: 1) }
        for _ in 0..<3 { try env.deliver() }
        #expect(env.readStates["n1", default: []].isEmpty)
        // Healed: the old leader learns the new term and steps down; still no read.
        env.heal()
        try env.tick(newLeader)
        try env.stabilize()
        #expect(try env.core("n1").role == .follower)
        #expect(env.readStates["n1", default: []].isEmpty)
    }

    // Lease-based reads answer at once within the lease (LeaderLeaseTests), and
    // require check-quorum.
    @Test func test_readIndex_leaseBasedAnswersImmediately() throws {
        var config = RaftConfig()
        config.readOnlyOption = .leaseBased
        let env = try InteractionEnv(count: 3, config: config)
        for node in env.ids { try env.tick(node, 10) }
        env.drop(where: { _ in true })
        try env.elect("n1")
        try env.tick("n1")
        try env.stabilize()
        try env.with("n1") { try $0.readIndex(context: 3) }
        #expect(env.readStates["n1"] == [ReadState(index: 1, context: 3)])
        config.checkQuorum = false
        #expect(throws: RaftError.self) { try config.validate() }
    }
}

@Suite struct FlowControlRegressionTests {
    // Regression (simulator, liveness failures with high loss): when every append in
    // a full pipeline was lost, nothing freed the window and the follower never caught
    // up. A heartbeat answer now frees one slot, so replication resumes.
    @Test func test_fullPipelineOfLostAppends_heartbeatResumesReplication() throws {
        var config = RaftConfig()
        config.maxInflightMessages = 2
        config.maxSizePerMessage = 40
        config.maxInflightBytes = 0
        let env = try InteractionEnv(count: 2, config: config)
        try env.elect("n1")
        for k in 0..<5 { try env.propose("n1", "p\(k)") }
        let lost = env.drop(where: { $0.to == "n2" })
        #expect(lost.count == 2)
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n2").log.lastIndex() == 6)
        #expect(try env.core("n1").log.committed == 6)
    }
}
