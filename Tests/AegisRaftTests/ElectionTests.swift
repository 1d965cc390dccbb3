import AegisRaft
import AegisTestKit
import Testing

@Suite struct ElectionTests {
    // Raft §5.2: a candidate that receives votes from a majority becomes leader and
    // announces itself with an append carrying its no-op entry.
    @Test func test_election_candidateWithMajorityBecomesLeader() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        try env.campaign("n1")
        #expect(try env.deliver() == [
            "n1->n2 Vote term=1 last=(0,0)",
            "n1->n3 Vote term=1 last=(0,0)",
        ])
        #expect(try env.deliver() == [
            "n2->n1 VoteResp term=1 granted",
            "n3->n1 VoteResp term=1 granted",
        ])
        #expect(try env.core("n1").role == .leader)
        #expect(try env.deliver() == [
            "n1->n2 App term=1 prev=(0,0) commit=0 entries=[1/1]",
            "n1->n3 App term=1 prev=(0,0) commit=0 entries=[1/1]",
        ])
        try env.stabilize()
        for id in env.ids {
            #expect(try env.core(id).log.committed == 1)
            #expect(try env.core(id).leader == "n1")
        }
    }

    // Raft §5.2: each node votes for at most one candidate in a given term.
    @Test func test_election_votesOncePerTerm() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        try env.campaign("n1")
        try env.campaign("n2")  // same term 1
        let votes = try env.deliver(where: to("n3"))
        #expect(votes == ["n1->n3 Vote term=1 last=(0,0)", "n2->n3 Vote term=1 last=(0,0)"])
        #expect(try env.deliver(where: from("n3")) == [
            "n3->n1 VoteResp term=1 granted",
            "n3->n2 VoteResp term=1 rejected",
        ])
    }

    // Raft §5.4.1: a voter denies its vote to a candidate whose log is less up to date.
    @Test func test_election_restrictionDeniesStaleCandidate() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        try env.replace("n1", storage: try storage(terms: [1], voters: env.ids), config: plainConfig())
        try env.replace("n2", storage: try storage(terms: [1, 2], voters: env.ids), config: plainConfig())
        try env.replace("n3", storage: try storage(terms: [1, 2], voters: env.ids), config: plainConfig())
        try env.campaign("n1")
        try env.deliver()
        #expect(try env.deliver() == [
            "n2->n1 VoteResp term=2 rejected",
            "n3->n1 VoteResp term=2 rejected",
        ])
        #expect(try env.core("n1").role == .follower)
    }

    // Randomized timeouts (§5.2): different seeds give different timeouts, all within
    // [electionTimeout, 2 * electionTimeout).
    @Test func test_election_randomizedTimeoutsSpread() throws {
        var seen = Set<Int>()
        for seed in 0..<50 {
            var config = RaftConfig()
            config.randomSeed = UInt64(seed)
            let s = MemoryStorage(conf: ConfState(voters: ["a", "b", "c"]))
            var core = try RaftCore(id: "a", config: config, storage: s)
            var ticks = 0
            while core.role == .follower && ticks < 100 {
                core.tick()
                ticks += 1
            }
            #expect(ticks >= 10 && ticks < 20)
            seen.insert(ticks)
        }
        #expect(seen.count > 3)
    }

    // Pre-vote (thesis §9.6): an isolated node keeps its term while it cannot win, and
    // on rejoining does not disrupt the leader.
    @Test func test_preVote_isolatedNodeDoesNotDisruptLeader() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        let term = try env.core("n1").term
        env.isolate("n3")
        try env.tick("n3", 40)  // several election timeouts
        let lines = try env.deliver()
        #expect(lines.contains("n3->n1 PreVote term=\(term + 1) last=(1,1) DROPPED"))
        #expect(try env.core("n3").term == term)
        #expect(try env.core("n3").role == .preCandidate)
        env.heal()
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n1").role == .leader)
        #expect(try env.core("n1").term == term)
        #expect(try env.core("n3").leader == "n1")
    }

    // Pre-vote: a pre-candidate that wins the pre-vote runs the real election.
    @Test func test_preVote_winningPreVoteStartsRealElection() throws {
        let env = try InteractionEnv(count: 3)
        try env.campaign("n1")
        #expect(try env.deliver() == [
            "n1->n2 PreVote term=1 last=(0,0)",
            "n1->n3 PreVote term=1 last=(0,0)",
        ])
        #expect(try env.core("n1").term == 0)
        #expect(try env.deliver() == [
            "n2->n1 PreVoteResp term=1 granted",
            "n3->n1 PreVoteResp term=1 granted",
        ])
        #expect(try env.deliver() == [
            "n1->n2 Vote term=1 last=(0,0)",
            "n1->n3 Vote term=1 last=(0,0)",
        ])
        #expect(try env.core("n2").term == 1)
    }

    // Check-quorum: a leader that hears from no quorum for an election timeout steps
    // down.
    @Test func test_checkQuorum_isolatedLeaderStepsDown() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        env.isolate("n1")
        for _ in 0..<2 * 10 {
            try env.tick("n1")
            try env.deliver()
        }
        #expect(try env.core("n1").role == .follower)
        #expect(try env.core("n1").stats.checkQuorumStepDowns == 1)
    }

    // Check-quorum: a follower that heard from its leader recently ignores a vote
    // request (leader lease), so a rejoining node cannot depose a healthy leader.
    @Test func test_checkQuorum_followerInLeaseIgnoresVote() throws {
        var config = RaftConfig()
        config.preVote = false
        let env = try InteractionEnv(count: 3, config: config)
        try env.elect("n1")
        try env.campaign("n3")  // term 2 campaign without pre-vote
        let lines = try env.deliver()
        #expect(lines == ["n3->n1 Vote term=2 last=(1,1)", "n3->n2 Vote term=2 last=(1,1)"])
        #expect(env.pending.isEmpty)  // both ignored it
        #expect(try env.core("n2").term == 1)
        #expect(try env.core("n1").role == .leader)
    }
}
