import AegisRaft
import AegisTestKit
import Testing

@Suite struct MembershipTests {
    func change(_ env: InteractionEnv, _ cc: ConfChange) throws {
        try env.with("n1") { try $0.proposeConfChange(cc) }
    }

    // Raft §6: a two-voter change runs through C_old,new, where decisions need a
    // majority of both sets, and is left automatically.
    @Test func test_jointConsensus_enterNeedsBothMajoritiesThenAutoLeave() throws {
        let env = try InteractionEnv(count: 5, voters: 3)  // n4, n5 are learners
        try env.elect("n1")
        try change(env, ConfChange([ConfChangeSingle(.addVoter, "n4"), ConfChangeSingle(.removeNode, "n3")]))
        // A second change is refused while the first is pending.
        #expect(throws: RaftError.configChangeInProgress) {
            try env.with("n1") { try $0.proposeConfChange(ConfChange([ConfChangeSingle(.addVoter, "n5")])) }
        }
        // Deliver until the joint configuration is applied on the leader, but hold back
        // the auto-leave entry's replication by isolating n2 and n3.
        for _ in 0..<20 where !(try env.core("n1").confState.isJoint) { try env.deliver() }
        let joint = try env.core("n1").confState
        #expect(joint.isJoint)
        #expect(joint.voters == ["n1", "n2", "n4"])
        #expect(joint.outgoingVoters == ["n1", "n2", "n3"])
        env.drop(where: { _ in true })
        env.isolate("n2")
        env.isolate("n3")
        env.cut = env.cut.filter { !($0.contains("n1") && $0.contains("n4")) }
        let before = try env.core("n1").log.committed
        try env.propose("n1", "x")
        for _ in 0..<10 { try env.tick("n1"); try env.deliver() }
        // {n1, n4} is a majority of C_new but {n1} is not one of C_old: nothing commits.
        #expect(try env.core("n1").log.committed == before)
        env.heal()
        try env.tick("n1")
        try env.stabilize()
        let left = try env.core("n1").confState
        #expect(!left.isJoint)
        #expect(left.voters == ["n1", "n2", "n4"])
        #expect(left.learners == ["n5"])
        for id: NodeID in ["n2", "n4"] { #expect(try env.core(id).confState == left) }
    }

    // A single-voter change is applied directly, without a joint phase.
    @Test func test_singleServerChange_addsLearnerThenPromotes() throws {
        let env = try InteractionEnv(count: 4, voters: 3)
        try env.elect("n1")
        try change(env, ConfChange([ConfChangeSingle(.addVoter, "n4")]))
        try env.stabilize()
        let conf = try env.core("n1").confState
        #expect(!conf.isJoint)
        #expect(conf.voters == ["n1", "n2", "n3", "n4"])
        #expect(conf.learners.isEmpty)
        #expect(try env.core("n4").isPromotable)
    }

    // A learner far behind is not promoted: it would stall commits.
    @Test func test_promotion_refusedWhileLearnerLags() throws {
        var config = RaftConfig()
        config.maxPromotionLag = 2
        let env = try InteractionEnv(count: 4, config: config, voters: 3)
        try env.elect("n1")
        env.isolate("n4")
        for k in 0..<5 { try env.propose("n1", "p\(k)") }
        try env.stabilize()
        #expect(throws: RaftError.self) {
            try env.with("n1") { try $0.proposeConfChange(ConfChange([ConfChangeSingle(.addVoter, "n4")])) }
        }
        env.heal()
        try env.tick("n1")
        try env.stabilize()
        try change(env, ConfChange([ConfChangeSingle(.addVoter, "n4")]))
        try env.stabilize()
        #expect(try env.core("n1").confState.voters.contains("n4"))
    }

    // Removing the leader: it keeps leading until the change is applied, then steps
    // down; the remaining voters elect a new leader.
    @Test func test_removeLeader_stepsDownAfterChangeApplied() throws {
        let env = try InteractionEnv(count: 3)
        try env.elect("n1")
        try change(env, ConfChange([ConfChangeSingle(.removeNode, "n1")]))
        try env.stabilize()
        #expect(try env.core("n1").role == .follower)
        #expect(try env.core("n2").confState.voters == ["n2", "n3"])
        env.isolate("n1")
        try env.tick("n2", 30)
        try env.stabilize()
        try env.tick("n3", 30)
        try env.stabilize()
        let leaders = try ["n2", "n3"].filter { try env.core(NodeID($0)).role == .leader }
        #expect(leaders.count == 1)
    }

    // Regression (simulator, first membership run): a node added later starts empty
    // and replays the membership history from the log. With the initial configuration
    // only in the founders' storage it replayed changes on an empty base, believed it
    // was the sole voter and elected itself. Bootstrapping writes the founding
    // configuration as entry 1, so every node derives the same configuration.
    @Test func test_bootstrap_lateJoinerDerivesSameConfiguration() throws {
        let founders: [NodeID] = ["a", "b", "c"]
        var storages: [NodeID: MemoryStorage] = [:]
        var cores: [NodeID: RaftCore] = [:]
        for id in founders {
            let s = MemoryStorage()
            try RaftCore.bootstrap(s, voters: founders)
            storages[id] = s
            cores[id] = try RaftCore(id: id, config: RaftConfig(), storage: s)
        }
        storages["d"] = MemoryStorage()
        cores["d"] = try RaftCore(id: "d", config: RaftConfig(), storage: try #require(storages["d"]))
        #expect(try #require(cores["d"]).isPromotable == false)
        var pending: [RaftMessage] = []
        func process() throws {
            for id in cores.keys.sorted() {
                guard var core = cores[id], let storage = storages[id] else { continue }
                while core.hasReady {
                    let rd = try core.ready()
                    if let snap = rd.snapshot { try storage.applySnapshot(snap) }
                    try storage.append(rd.entries)
                    if let hs = rd.hardState { try storage.setHardState(hs) }
                    pending += rd.messages
                    core.advance(rd)
                }
                cores[id] = core
            }
        }
        func pump() throws {
            try process()
            for _ in 0..<30 where !pending.isEmpty {
                let batch = pending
                pending = []
                for m in batch { try cores[m.to]?.step(m) }
                try process()
            }
        }
        try process()
        #expect(try #require(cores["a"]).confState.voters == Set(founders))
        cores["a"]?.campaign()
        try pump()
        #expect(try #require(cores["a"]).isLeader)
        try cores["a"]?.proposeConfChange(ConfChange([ConfChangeSingle(.addLearner, "d")]))
        try pump()
        try cores["a"]?.proposeConfChange(ConfChange([ConfChangeSingle(.removeNode, "c")]))
        try pump()
        let expected = ConfState(voters: ["a", "b"], learners: ["d"])
        #expect(try #require(cores["a"]).confState == expected)
        #expect(try #require(cores["d"]).confState == expected)
        #expect(try #require(cores["d"]).isPromotable == false)
    }
}
