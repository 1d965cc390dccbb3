import AegisRaft
import AegisTestKit
import Testing

/// Storage whose entries 1…n have `terms` and whose hard state says `committed`.
private func committedStorage(terms: [Term], committed: LogIndex, term: Term) throws -> MemoryStorage {
    let s = try storage(terms: terms, voters: ["n1", "n2", "n3"], term: term)
    try s.setHardState(RaftState(term: term, votedFor: nil, commitIndex: committed))
    return s
}

private func append(term: Term, prev: LogIndex, prevTerm: Term, entries: [(LogIndex, Term)],
                    commit: LogIndex) -> RaftMessage {
    RaftMessage(from: "n1", to: "n2", payload: .appendEntries(AppendEntriesRequest(
        term: term, leaderID: "n1", prevLogIndex: prev, prevLogTerm: prevTerm,
        entries: entries.map { LogEntry(index: $0.0, term: $0.1) }, leaderCommit: commit)))
}

@Suite struct DivergenceDetectionTests {
    // Raft §5.3/§5.4: an entry this node committed must be in every later leader's
    // log with the same term. A leader that says otherwise means acknowledged data was
    // lost somewhere: the node stops for good instead of answering "success".
    @Test func test_divergence_conflictBelowCommitIsDetectedAndSticky() throws {
        let s = try committedStorage(terms: [1, 1, 2, 2], committed: 3, term: 2)
        var core = try RaftCore(id: "n2", config: plainConfig(), storage: s)
        #expect(core.log.committed == 3)
        // The leader of term 5 has entry 3 in term 3, not 2 (prevLogIndex < committed:
        // this append used to be answered with success without a look).
        do {
            try core.step(append(term: 5, prev: 1, prevTerm: 1, entries: [(2, 1), (3, 3)], commit: 3))
            Issue.record("a conflicting committed entry was accepted")
        } catch RaftError.diverged(let d) {
            #expect(d == Divergence(index: 3, localTerm: 2, leaderTerm: 3, leader: "n1", term: 5, committedIndex: 3))
        }
        #expect(core.divergence?.index == 3)
        // Nothing in the log changed.
        #expect(try (1...4).map { try core.log.term(at: $0) } == [1, 1, 2, 2])
        #expect(core.log.committed == 3)
        // Sticky: every message, proposal and read is refused; it never campaigns.
        let found = try #require(core.divergence)
        #expect(throws: RaftError.diverged(found)) {
            try core.step(RaftMessage(from: "n3", to: "n2", payload: .vote(VoteRequest(
                term: 9, candidateID: "n3", lastLogIndex: 10, lastLogTerm: 8))))
        }
        #expect(throws: RaftError.self) { try core.propose([1]) }
        #expect(throws: RaftError.self) { try core.readIndex(context: 1) }
        let campaigns = core.stats.campaigns
        for _ in 0..<100 { core.tick() }
        #expect(core.stats.campaigns == campaigns && core.role == .follower)
        #expect(core.term == 5)
        // Nothing further is applied.
        let rd = try core.ready()
        #expect(rd.committedEntries.isEmpty && rd.messages.isEmpty && rd.entries.isEmpty)
    }

    @Test func test_divergence_prevEntryAtTheCommitIndexConflicts() throws {
        let s = try committedStorage(terms: [1, 1, 2], committed: 3, term: 2)
        var core = try RaftCore(id: "n2", config: plainConfig(), storage: s)
        #expect(throws: RaftError.self) {
            try core.step(append(term: 4, prev: 3, prevTerm: 3, entries: [(4, 4)], commit: 4))
        }
        #expect(core.divergence?.index == 3)
        #expect(try core.log.lastIndex() == 3)
    }

    @Test func test_divergence_snapshotBelowCommitWithAnotherTerm() throws {
        let s = try committedStorage(terms: [1, 1, 2], committed: 3, term: 2)
        var core = try RaftCore(id: "n2", config: plainConfig(), storage: s)
        let meta = SnapshotMetadata(index: 2, term: 3, confState: ConfState(voters: ["n1", "n2", "n3"]))
        #expect(throws: RaftError.self) {
            try core.step(RaftMessage(from: "n1", to: "n2", payload: .installSnapshot(InstallSnapshotRequest(
                term: 4, leaderID: "n1", metadata: meta, offset: 0, data: [1], done: true))))
        }
        #expect(core.divergence == Divergence(index: 2, localTerm: 1, leaderTerm: 3, leader: "n1", term: 4,
                                              committedIndex: 3))
    }

    // The ordinary cases are not divergences: an uncommitted conflicting suffix is
    // replaced (Raft §5.3), and a matching committed prefix is acknowledged.
    @Test func test_divergence_uncommittedConflictIsReplacedAsUsual() throws {
        let s = try committedStorage(terms: [1, 1, 2, 2], committed: 2, term: 2)
        var core = try RaftCore(id: "n2", config: plainConfig(), storage: s)
        try core.step(append(term: 3, prev: 2, prevTerm: 1, entries: [(3, 3)], commit: 3))
        #expect(core.divergence == nil)
        #expect(try (1...3).map { try core.log.term(at: $0) } == [1, 1, 3])
        #expect(core.log.committed == 3)
    }

    // A hand-made bad history: n3 committed entry 2 in term 2, but n1 and n2 (a
    // quorum) lost it, hold entry 2 from term 1 and elect n1. n3 diverges on n1's
    // first append; n1 and n2 keep committing.
    @Test func test_divergence_inACluster_theDivergedNodeStopsAndTheOthersContinue() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        for id in ["n1", "n2"] as [NodeID] {
            try env.replace(id, storage: try committedStorage(terms: [1, 1], committed: 1, term: 2), config: plainConfig())
        }
        try env.replace("n3", storage: try committedStorage(terms: [1, 2], committed: 2, term: 2), config: plainConfig())
        try env.campaign("n1")
        try env.deliver(where: to("n2", "n3"))  // vote requests
        try env.deliver(where: to("n1"))  // n2 grants (n3's log is more up to date: it refuses)
        #expect(try env.core("n1").isLeader)
        var diverged: RaftError?
        for _ in 0..<10 where !env.pending.isEmpty {
            do { try env.deliver() } catch { diverged = error as? RaftError }
        }
        guard case .diverged(let d) = diverged else {
            Issue.record("no divergence: \(String(describing: diverged))")
            return
        }
        #expect(d.index == 2 && d.localTerm == 2 && d.leaderTerm == 1 && d.leader == "n1")
        #expect(try env.core("n3").divergence == d)
        try env.propose("n1", "after")
        for _ in 0..<10 where !env.pending.isEmpty { _ = try? env.deliver() }
        let committed = try env.core("n1").log.committed
        #expect(committed == 4)  // no-op at 3, "after" at 4
        #expect(try env.core("n2").log.committed == 4)
        #expect(try env.core("n3").log.committed == 2)
        #expect(try env.logTerms("n3") == [1, 2])
    }
}
