import AegisRaft
import AegisTestKit
import Testing

@Suite struct ReplicationTests {
    // Raft §5.3: the leader appends a proposal, replicates it, commits it once a
    // majority stored it, and every node applies it.
    @Test func test_replication_proposalCommittedAndAppliedEverywhere() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        let proposal = try env.propose("n1", "hello")
        #expect(proposal == .appended(index: 2, term: 1))
        #expect(try env.deliver() == [
            "n1->n2 App term=1 prev=(1,1) commit=1 entries=[2/1]",
            "n1->n3 App term=1 prev=(1,1) commit=1 entries=[2/1]",
        ])
        #expect(try env.deliver() == ["n2->n1 AppResp term=1 match=2", "n3->n1 AppResp term=1 match=2"])
        #expect(try env.core("n1").log.committed == 2)
        // The new commit index goes out with the next append.
        #expect(try env.deliver() == [
            "n1->n2 App term=1 prev=(2,1) commit=2 entries=[]",
            "n1->n3 App term=1 prev=(2,1) commit=2 entries=[]",
        ])
        try env.stabilize()
        for id in env.ids {
            let applied = env.applied[id] ?? []
            #expect(applied.map(\.index) == [1, 2])
            #expect(applied.last?.data == Array("hello".utf8))
        }
    }

    // Raft §5.3: a follower's conflicting suffix is replaced by the leader's entries.
    @Test func test_replication_conflictingSuffixIsOverwritten() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        try env.replace("n1", storage: try storage(terms: [1, 2, 2], voters: env.ids), config: plainConfig())
        try env.replace("n2", storage: try storage(terms: [1, 2, 2], voters: env.ids), config: plainConfig())
        try env.replace("n3", storage: try storage(terms: [1, 1, 1, 1, 1], voters: env.ids, term: 2), config: plainConfig())
        try env.elect("n1")
        #expect(try env.logTerms("n3") == [1, 2, 2, 3])
        #expect(try env.logTerms("n2") == [1, 2, 2, 3])
        #expect(try env.core("n3").log.committed == 4)
    }

    // Fast backtracking (§5.3): the follower's hint lets the leader skip a whole term
    // of mismatching entries in one round trip instead of one per entry.
    @Test func test_backtracking_skipsWholeTermOnRejection() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        let leaderLog: [Term] = [1, 1, 1, 4, 4, 4, 4]
        try env.replace("n1", storage: try storage(terms: leaderLog, voters: env.ids, term: 4), config: plainConfig())
        try env.replace("n2", storage: try storage(terms: leaderLog, voters: env.ids, term: 4), config: plainConfig())
        // n3 has a long divergent tail of term 2 and 3 entries.
        try env.replace("n3", storage: try storage(terms: [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], voters: env.ids, term: 3),
                        config: plainConfig())
        try env.campaign("n1")
        try env.deliver()
        try env.deliver()  // votes; n1 is leader of term 5
        #expect(try env.core("n1").role == .leader)
        #expect(try env.deliver(where: to("n3")) == ["n1->n3 App term=5 prev=(7,4) commit=0 entries=[8/5]"])
        // n3: entry 7 has term 2, not 4; its largest index with term <= 4 is 7 itself,
        // whose term 2 lets the leader jump to its last index with term <= 2: index 3.
        #expect(try env.deliver(where: from("n3")) == ["n3->n1 AppResp term=5 reject=7 hint=(7,2)"])
        #expect(try env.deliver(where: to("n3")) == ["n1->n3 App term=5 prev=(3,1) commit=0 entries=[4/4,5/4,6/4,7/4,8/5]"])
        try env.stabilize()
        #expect(try env.logTerms("n3") == [1, 1, 1, 4, 4, 4, 4, 5])
    }

    // Flow control: in the replicate state at most `maxInflightMessages` appends are
    // outstanding; further proposals wait until acknowledgements free the window.
    @Test func test_flowControl_inflightWindowBoundsPipeline() throws {
        var config = RaftConfig()
        config.maxInflightMessages = 3
        config.maxSizePerMessage = 40  // one entry per message
        config.maxInflightBytes = 0
        let env = try InteractionEnv(count: 2, config: config)
        try env.elect("n1")
        for k in 0..<6 { try env.propose("n1", "p\(k)") }
        // Proposals between two Ready are batched, so propose one per Ready:
        // each was processed on its own by `propose` above.
        let appends = env.pending.filter { $0.to == "n2" && $0.kindName == "App" }
        #expect(appends.count == 3)
        #expect(try env.core("n1").progress(of: "n2")?.state == .replicate)
        // Acknowledging the first append frees one slot: exactly one more is sent.
        try env.deliver(where: to("n2"))
        let responses = env.pending.filter { $0.from == "n2" }
        #expect(responses.count == 3)
        try env.deliver(where: { $0.from == "n2" && $0 == responses[0] })
        #expect(env.pending.filter { $0.to == "n2" && $0.kindName == "App" }.count == 1)
        try env.stabilize()
        #expect(try env.core("n2").log.committed == 7)
    }

    // Flow control: the byte window stops the pipeline before the message count does.
    @Test func test_flowControl_inflightBytesBoundPipeline() throws {
        var config = RaftConfig()
        config.maxInflightMessages = 100
        config.maxSizePerMessage = 200
        config.maxInflightBytes = 300
        let env = try InteractionEnv(count: 2, config: config)
        try env.elect("n1")
        let big = String(repeating: "x", count: 150)
        for _ in 0..<5 { try env.propose("n1", big) }
        let appends = env.pending.filter { $0.to == "n2" && $0.kindName == "App" }
        #expect(appends.count == 2)  // 2 × 182 bytes reaches the 300-byte window
    }

    // Uncommitted bytes are bounded: proposals past the limit are refused with a clear
    // error, and accepted again once entries commit.
    @Test func test_uncommittedLimit_refusesThenRecovers() throws {
        var config = RaftConfig()
        config.maxUncommittedBytes = 100
        let env = try InteractionEnv(count: 3, config: config)
        try env.elect("n1")
        env.isolate("n1")
        try env.propose("n1", String(repeating: "a", count: 60))
        try env.propose("n1", String(repeating: "b", count: 30))
        #expect(throws: RaftError.uncommittedLimitExceeded(limit: 100)) {
            try env.propose("n1", String(repeating: "c", count: 20))
        }
        env.heal()
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n1").log.committed == 3)
        try env.propose("n1", String(repeating: "c", count: 20))
    }

    // Followers refuse proposals and name the leader, or forward them when asked to.
    @Test func test_followerProposal_refusedWithLeaderOrForwarded() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        #expect(throws: RaftError.notLeader(leader: "n1")) { try env.propose("n2", "x") }

        var config = RaftConfig()
        config.forwardProposals = true
        let fwd = try InteractionEnv(count: 3, config: config)
        try fwd.elect("n1")
        #expect(try fwd.propose("n2", "x") == .forwarded(to: "n1"))
        #expect(try fwd.deliver() == ["n2->n1 Prop term=1 entries=1"])
        try fwd.stabilize()
        #expect(try fwd.core("n3").log.committed == 2)
    }

    // Heartbeats carry the commit index (bounded by the follower's match).
    @Test func test_heartbeat_carriesCommitIndex() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        try env.propose("n1", "x")
        try env.deliver()  // appends
        try env.deliver()  // responses: n1 commits 2
        env.drop(where: { _ in true })  // lose the commit updates
        #expect(try env.core("n2").log.committed == 1)
        try env.tick("n1")
        #expect(try env.deliver(where: to("n2")) == ["n1->n2 Heartbeat term=1 commit=2"])
        #expect(try env.core("n2").log.committed == 2)
    }
}
