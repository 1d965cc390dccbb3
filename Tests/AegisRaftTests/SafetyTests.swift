import AegisRaft
import AegisTestKit
import Testing

@Suite struct SafetyTests {
    // Raft §5.4.2: a leader commits only entries of its own term by counting replicas.
    @Test func test_commit_onlyCurrentTermEntriesByCounting() throws {
        let config = plainConfig()
        let env = try InteractionEnv(count: 3, config: config)
        for id in env.ids { try env.replace(id, storage: try storage(terms: [1, 2], voters: env.ids), config: config) }
        try env.campaign("n1")
        try env.deliver()
        try env.deliver()
        #expect(try env.core("n1").role == .leader)
        #expect(try env.core("n1").term == 3)
        // Followers acknowledge index 2 (term 2) only: not committed by counting.
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(
                AppendEntriesResponse(term: 3, success: true, followerID: "n2", matchIndex: 2))))
        }
        #expect(try env.core("n1").log.committed == 0)
        // Once the term-3 no-op is on a majority, everything up to it commits.
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(
                AppendEntriesResponse(term: 3, success: true, followerID: "n2", matchIndex: 3))))
        }
        #expect(try env.core("n1").log.committed == 3)
    }

    /// The state of Raft figure 8 (b): S1 led term 2 and copied entry 2/2 to S2 only;
    /// S5 led term 3 and wrote 2/3 locally; everyone is at term 3. Then S1 wins term 4
    /// (votes of S2, S3, S4) and appends its no-op 3/4.
    func figure8() throws -> InteractionEnv {
        var config = plainConfig()
        config.maxSizePerMessage = 1  // one entry per append, as in the figure
        let env = try InteractionEnv(count: 5, config: config)
        let ids = env.ids
        try env.replace("n1", storage: try storage(terms: [1, 2], voters: ids, term: 3), config: config)
        try env.replace("n2", storage: try storage(terms: [1, 2], voters: ids, term: 3), config: config)
        try env.replace("n3", storage: try storage(terms: [1], voters: ids, term: 3), config: config)
        try env.replace("n4", storage: try storage(terms: [1], voters: ids, term: 3), config: config)
        try env.replace("n5", storage: try storage(terms: [1, 3], voters: ids, term: 3), config: config)
        env.isolate("n5")
        try env.campaign("n1")
        try env.deliver()
        try env.deliver()
        #expect(try env.core("n1").role == .leader)
        #expect(try env.core("n1").term == 4)
        env.drop(where: { _ in true })
        return env
    }

    // Raft figure 8 (c)-(d): S1 copies the term-2 entry to S3, so a majority
    // (S1, S2, S3) stores it, yet S1 must not commit it: S5 can still be elected and
    // legitimately overwrite it.
    @Test func test_figure8_oldTermEntryOnMajorityIsNotCommitted() throws {
        let env = try figure8()
        try env.tick("n1")  // heartbeat round: n3 answers, n1 probes it
        for _ in 0..<6 {
            try env.deliver(where: { $0.to == "n3" || ($0.from == "n3" && $0.to == "n1") })
            env.drop(where: { $0.to != "n3" && $0.to != "n1" })
            if try env.core("n3").log.lastIndex() == 2 { break }
        }
        #expect(try env.logTerms("n3") == [1, 2])
        try env.deliver(where: { $0.from == "n3" && $0.kindName == "AppResp" })
        // S2 also answers a probe with match 2.
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(
                AppendEntriesResponse(term: 4, success: true, followerID: "n2", matchIndex: 2))))
        }
        #expect(try env.core("n1").progress(of: "n3")?.match == 2)
        #expect(try env.core("n1").log.committed == 0)
        // (d) S1 crashes; S5 (last entry 2/3) wins term 5 and overwrites index 2.
        env.drop(where: { _ in true })
        env.heal()
        env.isolate("n1")
        try env.campaign("n5")  // term 4: S2-S4 already voted for S1 in term 4
        try env.stabilize()
        try env.campaign("n5")  // term 5
        try env.stabilize()
        #expect(try env.core("n5").role == .leader)
        #expect(try env.logTerms("n2") == [1, 3, 5])
        #expect(try env.logTerms("n3") == [1, 3, 5])
    }

    // Raft figure 8 (e): once S1's term-4 entry is on a majority, it commits, the
    // term-2 entry below it commits with it, and S5 can no longer be elected.
    @Test func test_figure8_currentTermEntryOnMajorityCommitsOldOnes() throws {
        let env = try figure8()
        env.cut = env.cut.filter { !($0.contains("n4")) }
        env.isolate("n4")  // only S1, S2, S3 take part
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n1").log.committed == 3)
        #expect(try env.logTerms("n3") == [1, 2, 4])
        env.heal()
        env.isolate("n1")
        for _ in 0..<2 {
            try env.campaign("n5")
            try env.stabilize()
        }
        #expect(try env.core("n5").role != .leader)
    }

    // The Ready contract: the leader's own unpersisted entries do not count towards
    // the quorum; only `advance` after persisting makes them count.
    @Test func test_leaderOwnEntriesCountOnlyAfterPersist() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        var leader = try env.core("n1")
        _ = try leader.propose(Array("x".utf8))
        let rd = try leader.ready()
        #expect(rd.entries.map(\.index) == [2])
        // n2 acknowledges index 2 while the leader's own write is still in flight
        // (what a parallel disk write looks like to the core): n2 alone is not a
        // quorum of 3, and the leader's unpersisted copy must not count.
        try leader.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(
            AppendEntriesResponse(term: 1, success: true, followerID: "n2", matchIndex: 2))))
        #expect(leader.log.committed == 1)
        #expect(leader.progress(of: "n1")?.match == 1)
        // The write completes: now n1 + n2 form a quorum.
        try #require(env.storages["n1"]).append(rd.entries)
        leader.advance(rd)
        #expect(leader.progress(of: "n1")?.match == 2)
        #expect(leader.log.committed == 2)
    }
}
