import AegisRaft
import AegisTestKit
import Testing

/// Lease reads (`ReadOnlyOption.leaseBased`, Raft thesis §6.4.1): when the leader may
/// answer a read without a round, and the voters' side of the promise.
@Suite struct LeaderLeaseTests {
    /// Election timeout 10, drift bound 10 %: a lease of floor(9 * 90 / 110) = 7 ticks.
    static func leaseConfig() -> RaftConfig {
        var c = RaftConfig(electionTimeout: 10, heartbeatInterval: 1)
        c.readOnlyOption = .leaseBased
        c.maxClockDriftPercent = 10
        return c
    }

    /// Nodes that just started keep a promise for an election timeout (they might
    /// have acknowledged a leader before a restart): age it, then elect `id`.
    func electedCluster(_ id: NodeID = "n1") throws -> InteractionEnv {
        let env = try InteractionEnv(count: 3, config: Self.leaseConfig())
        for node in env.ids { try env.tick(node, 10) }
        env.drop(where: { _ in true })
        try env.elect(id)
        return env
    }

    /// Ticks the leader once and delivers its heartbeat round and the answers.
    func renewLease(_ env: InteractionEnv, _ leader: NodeID = "n1") throws {
        try env.tick(leader)
        try env.stabilize()
    }

    func read(_ env: InteractionEnv, _ node: NodeID, _ context: UInt64) throws -> Bool {
        try env.with(node) { try $0.readIndex(context: context) }
        return env.readStates[node, default: []].contains { $0.context == context }
    }

    @Test func test_leaseDuration_followsElectionTimeoutAndDriftBound() throws {
        var c = Self.leaseConfig()
        #expect(c.leaseDurationTicks == 7)
        c.maxClockDriftPercent = 0
        #expect(c.leaseDurationTicks == 9)
        c.maxClockDriftPercent = 50
        #expect(c.leaseDurationTicks == 3)
        c.electionTimeout = 2
        c.heartbeatInterval = 1
        c.maxClockDriftPercent = 10
        #expect(c.leaseDurationTicks == 0)
        #expect(throws: RaftError.self) { try c.validate() }
        c.electionTimeout = 10
        c.maxClockDriftPercent = 100
        #expect(throws: RaftError.self) { try c.validate() }
        c.maxClockDriftPercent = 10
        try c.validate()
    }

    // Within the lease the read is answered at once, with no message.
    @Test func test_lease_answersLocallyAfterQuorumAcknowledgedRound() throws {
        let env = try electedCluster()
        try renewLease(env)
        #expect(try read(env, "n1", 1))
        #expect(env.readStates["n1"] == [ReadState(index: 1, context: 1)])
        #expect(env.pending.isEmpty)
    }

    // Before any round was acknowledged there is no lease: the read waits for one.
    @Test func test_lease_noLeaseBeforeAnAcknowledgedRound() throws {
        let env = try electedCluster()
        #expect(try !read(env, "n1", 1))
        #expect(env.pending.contains { if case .heartbeat = $0.payload { true } else { false } })
        try env.stabilize()
        #expect(env.readStates["n1"] == [ReadState(index: 1, context: 1)])
    }

    // The lease runs from when the round was sent, not from when the answers came:
    // a round sent at tick 1 and acknowledged at tick 6 gives a lease up to tick 7.
    @Test func test_lease_measuredFromTheSendOfTheRound() throws {
        let env = try electedCluster()
        try env.tick("n1")  // leader tick 1: round sent
        try env.deliver(where: from("n1"))  // the followers answer; answers held
        for _ in 0..<5 {
            try env.tick("n1")
            env.drop(where: from("n1"))  // later rounds are lost
        }
        try env.deliver(where: to("n1"))  // tick 6: the round of tick 1 is acknowledged
        #expect(try read(env, "n1", 1))  // tick 6: 6 - 1 = 5 < 7
        try env.tick("n1")
        env.drop(where: from("n1"))
        #expect(try read(env, "n1", 2))  // tick 7: 6 < 7
        try env.tick("n1")
        env.drop(where: from("n1"))
        #expect(try !read(env, "n1", 3))  // tick 8: 7, expired; waits for a round
    }

    // Without a quorum's answers the lease ends and reads go back to rounds, which a
    // cut-off leader cannot complete.
    @Test func test_lease_expiresWithoutAcknowledgements() throws {
        let env = try electedCluster()
        try renewLease(env)
        env.isolate("n1")
        for _ in 0..<7 {
            try env.tick("n1")
            try env.stabilize()
        }
        #expect(try env.core("n1").role == .leader)
        #expect(try !read(env, "n1", 1))
        try env.stabilize()
        #expect(!env.readStates["n1", default: []].contains { $0.context == 1 })
    }

    // A transfer gives up the lease for the term: the target campaigns with voters
    // ignoring their promise, whenever the TimeoutNow arrives.
    @Test func test_lease_revokedByTimeoutNow() throws {
        let env = try electedCluster()
        try renewLease(env)
        try env.with("n1") { try $0.transferLeadership(to: "n3") }
        let timeoutNow = env.drop(where: from("n1"))
        #expect(timeoutNow == ["n1->n3 TimeoutNow term=1"])
        #expect(try !read(env, "n1", 1))
        // Still no lease after the transfer gave up and fresh rounds were answered.
        for _ in 0..<10 { try renewLease(env) }
        #expect(try env.core("n1").leadTransferee == nil)
        #expect(try env.core("n1").role == .leader)
        #expect(try !read(env, "n1", 2))
    }

    // A voter that acknowledged the leader and restarted has forgotten the leader,
    // but still ignores campaigns for an election timeout after its start.
    @Test func test_lease_restartedVoterKeepsThePromise() throws {
        let env = try electedCluster()
        try renewLease(env)
        let storage = try #require(env.storages["n2"])
        var config = Self.leaseConfig()
        config.randomSeed = 2
        try env.replace("n2", storage: storage, config: config)
        #expect(try env.core("n2").leader == nil)
        env.isolate("n1")
        try env.campaign("n3")
        try env.stabilize()
        #expect(try env.core("n3").role != .leader)
        // After an election timeout without a leader the promise has ended.
        try env.tick("n2", 10)
        env.drop(where: from("n2"))
        try env.campaign("n3")
        try env.stabilize()
        #expect(try env.core("n3").role == .leader)
    }

    // The lease needs a commit in the leader's term (Raft thesis §6.4 step 1): before
    // it, the commit index may be behind.
    @Test func test_lease_notBeforeCommitInTerm() throws {
        let env = try InteractionEnv(count: 3, config: Self.leaseConfig())
        for node in env.ids { try env.tick(node, 10) }
        env.drop(where: { _ in true })
        try env.campaign("n1")
        let isAppend: (RaftMessage) -> Bool = { if case .appendEntries = $0.payload { true } else { false } }
        for _ in 0..<10 {
            env.drop(where: isAppend)
            try env.deliver()
        }
        #expect(try env.core("n1").role == .leader)
        for _ in 0..<3 {
            try env.tick("n1")
            for _ in 0..<4 {
                env.drop(where: isAppend)
                try env.deliver()
            }
        }
        #expect(try env.core("n1").log.committed == 0)
        #expect(try !read(env, "n1", 1))
        #expect(env.readStates["n1", default: []].isEmpty)
        // The next heartbeat's answers ask for the entries; once the no-op commits,
        // the read is answered at its index.
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n1").log.committed == 1)
        #expect(env.readStates["n1"] == [ReadState(index: 1, context: 1)])
    }

    /// Clocks at different rates: after n1's round at time 0 (its tick 1) is
    /// acknowledged, n1 is cut off. n1 ticks every `leaderPeriod` time units, n2 and n3
    /// every `followerPeriod`; as soon as their promise ends (10 of their ticks) n2
    /// campaigns, wins with n3, and commits a write. Returns `true` if n1 then serves a
    /// read locally at an index below that write: a stale read.
    func staleReadAfterPartition(driftBound: Int, leaderPeriod: Int, followerPeriod: Int) throws -> Bool {
        var config = Self.leaseConfig()
        config.maxClockDriftPercent = driftBound
        let env = try InteractionEnv(count: 3, config: config)
        for node in env.ids { try env.tick(node, 10) }
        env.drop(where: { _ in true })
        try env.elect("n1")
        try renewLease(env)
        env.isolate("n1")
        var followerTicks = 0
        for time in 1...(10 * followerPeriod) {
            if time % leaderPeriod == 0 { try env.tick("n1") }
            if time % followerPeriod == 0 {
                try env.tick("n2")
                try env.tick("n3")
                followerTicks += 1
            }
            try env.stabilize()
        }
        #expect(followerTicks == 10)
        try env.campaign("n2")
        try env.stabilize()
        #expect(try env.core("n2").role == .leader)
        try env.propose("n2", "written after the partition")
        try env.stabilize()
        let committed = try env.core("n2").log.committed
        #expect(try env.core("n1").role == .leader)  // has not noticed
        try env.with("n1") { try $0.readIndex(context: 99) }
        guard let served = env.readStates["n1", default: []].first(where: { $0.context == 99 }) else { return false }
        return served.index < committed
    }

    // Drift within the bound (a 10 % slow leader, 10 % fast followers, bound 10 %): the
    // lease ended before the others could elect a leader; the read waits for a round.
    @Test func test_lease_driftWithinBound_noStaleRead() throws {
        #expect(try !staleReadAfterPartition(driftBound: 10, leaderPeriod: 110, followerPeriod: 90))
    }

    // The same clocks with the margin removed (bound 0: a lease of 9 of 10 ticks):
    // the old leader serves a stale read. This is what the margin is for.
    @Test func test_lease_marginRemoved_staleRead() throws {
        #expect(try staleReadAfterPartition(driftBound: 0, leaderPeriod: 110, followerPeriod: 90))
    }
}
