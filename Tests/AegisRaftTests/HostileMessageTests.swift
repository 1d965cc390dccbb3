import AegisRaft
import AegisTestKit
import Testing

/// What a refused message must leave untouched.
private struct Observed: Equatable {
    var term: Term
    var votedFor: NodeID?
    var role: RaftRole
    var leader: NodeID?
    var committed: LogIndex
    var applied: LogIndex
    var lastIndex: LogIndex
    var logTerms: [Term]
    var progress: [NodeID: Progress]
    var hasReady: Bool

    init(_ core: RaftCore) throws {
        term = core.term
        votedFor = core.votedFor
        role = core.role
        leader = core.leader
        committed = core.log.committed
        applied = core.appliedIndex
        lastIndex = try core.log.lastIndex()
        let first = try core.log.firstIndex()
        logTerms = lastIndex >= first ? try (first...lastIndex).map { try core.log.term(at: $0) } : []
        progress = [:]
        for id in core.confState.allMembers { progress[id] = core.progress(of: id) }
        hasReady = core.hasReady
    }
}

/// Steps `message` into its receiver (a copy of it) and checks that it is refused with
/// `RaftError.invalidMessage` mentioning `reason`, and that nothing changed.
private func expectRefused(_ env: InteractionEnv, _ message: RaftMessage, _ reason: String,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
    var core = try env.core(message.to)
    let before = try Observed(core)
    do {
        try core.step(message)
        Issue.record("accepted: \(InteractionEnv.describe(message))", sourceLocation: sourceLocation)
    } catch RaftError.invalidMessage(let why) {
        #expect(why.contains(reason), "refused for another reason: \(why)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
    #expect(try Observed(core) == before, "state changed", sourceLocation: sourceLocation)
}

/// A three-node cluster, `n1` leading in term 2 after one election, with a few
/// entries replicated and committed everywhere and nothing pending.
private func cluster() throws -> InteractionEnv {
    let env = try InteractionEnv(count: 3, config: plainConfig())
    try env.elect("n1")
    for k in 0..<3 { try env.propose("n1", "v\(k)") }
    try env.stabilize()
    try env.tick("n1")
    try env.stabilize()
    return env
}

private func message(_ from: NodeID, _ to: NodeID, _ payload: RaftMessage.Payload) -> RaftMessage {
    RaftMessage(from: from, to: to, payload: payload)
}

@Suite struct HostileMessageTests {
    // MARK: Leader side

    @Test func test_hostile_hugeMatchIndexIsRefusedByTheLeader() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let last = try env.core("n1").log.lastIndex()
        // 2^64-1 used to trap on `index + 1` in Progress.maybeUpdate: the leader died.
        try expectRefused(env, message("n2", "n1", .appendEntriesResponse(AppendEntriesResponse(
            term: term, success: true, followerID: "n2", matchIndex: .max))), "appendResponse.matchIndex")
        // In range, but beyond anything the leader sent.
        try expectRefused(env, message("n2", "n1", .appendEntriesResponse(AppendEntriesResponse(
            term: term, success: true, followerID: "n2", matchIndex: last + 5))), "beyond the leader's last index")
    }

    @Test func test_hostile_hugeRejectionHintIsRefusedByTheLeader() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let last = try env.core("n1").log.lastIndex()
        try expectRefused(env, message("n2", "n1", .appendEntriesResponse(AppendEntriesResponse(
            term: term, success: false, followerID: "n2", rejectedIndex: last, hintIndex: .max, hintTerm: 1))),
            "appendResponse.hintIndex")
        try expectRefused(env, message("n2", "n1", .appendEntriesResponse(AppendEntriesResponse(
            term: term, success: false, followerID: "n2", rejectedIndex: .max, hintIndex: 0))),
            "appendResponse.rejectedIndex")
        try expectRefused(env, message("n2", "n1", .appendEntriesResponse(AppendEntriesResponse(
            term: term, success: false, followerID: "n2", rejectedIndex: last, hintIndex: 1, hintTerm: term + 1))),
            "appendResponse.hintTerm")
    }

    @Test func test_hostile_snapshotResponseOffsetsAreRefusedByTheLeader() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        try expectRefused(env, message("n2", "n1", .installSnapshotResponse(InstallSnapshotResponse(
            term: term, followerID: "n2", snapshotIndex: 1, nextOffset: .max, done: false))),
            "snapshotResponse.nextOffset")
    }

    @Test func test_hostile_forwardedConfigurationChangeIsRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let change = ConfChange([ConfChangeSingle(.removeNode, "n3")])
        try expectRefused(env, message("n2", "n1", .forwardedProposal(term: term, entries: [
            LogEntry(index: 0, term: 0, type: .configChange, data: change.encoded())])), "forwardedProposal")
    }

    // MARK: Follower side

    @Test func test_hostile_nonContiguousEntriesAreRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let last = try env.core("n2").log.lastIndex()
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: term, leaderID: "n1", prevLogIndex: last, prevLogTerm: term,
            entries: [LogEntry(index: last + 1, term: term), LogEntry(index: last + 3, term: term)],
            leaderCommit: last))), "contiguous")
    }

    @Test func test_hostile_entriesNotFollowingPrevIndexAreRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let last = try env.core("n2").log.lastIndex()
        // Used to reach the storage, which refused the gap: "storage failure", node stopped.
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: term, leaderID: "n1", prevLogIndex: last, prevLogTerm: term,
            entries: [LogEntry(index: last + 2, term: term)], leaderCommit: last))), "follow prevLogIndex")
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: term, leaderID: "n1", prevLogIndex: last, prevLogTerm: term,
            entries: [LogEntry(index: last, term: term)], leaderCommit: last))), "follow prevLogIndex")
    }

    @Test func test_hostile_entryTermsOutOfOrderAreRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let last = try env.core("n2").log.lastIndex()
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: term, leaderID: "n1", prevLogIndex: last, prevLogTerm: term,
            entries: [LogEntry(index: last + 1, term: term + 1)], leaderCommit: last))), "beyond the append's term")
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: term, leaderID: "n1", prevLogIndex: last, prevLogTerm: term,
            entries: [LogEntry(index: last + 1, term: term), LogEntry(index: last + 2, term: term - 1)],
            leaderCommit: last))), "below the term")
    }

    @Test func test_hostile_heartbeatCommitOutOfRangeIsRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        try expectRefused(env, message("n1", "n2", .heartbeat(HeartbeatRequest(
            term: term, leaderID: "n1", commitIndex: .max))), "heartbeat.commitIndex")
    }

    // A commit index beyond the log is what an honest leader sends to a node that lost
    // acknowledged entries, so it is not refused (the node would lose its leader and
    // campaign): nothing is committed, and the answer tells the leader where the log
    // really ends.
    @Test func test_hostile_heartbeatCommitBeyondTheLogCommitsNothing() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        var core = try env.core("n2")
        let before = try Observed(core)
        try core.step(message("n1", "n2", .heartbeat(HeartbeatRequest(
            term: term, leaderID: "n1", commitIndex: before.lastIndex + 100))))
        #expect(core.log.committed == before.committed)
        let rd = try core.ready()
        #expect(rd.committedEntries.isEmpty && rd.entries.isEmpty)
        #expect(rd.messages.map(InteractionEnv.describe) == [
            "n2->n1 HeartbeatResp term=\(term) wants-append last=\(before.lastIndex)",
        ])
    }

    // The issue's wipe-and-restart: the leader kept the old match of a follower whose
    // log now ends at 0, counted it, and never probed below that match. The follower's
    // heartbeat answer now says where its log ends; the leader probes from there and
    // the follower catches up.
    @Test func test_heartbeat_wipedFollowerIsProbedFromItsRealEndAndCatchesUp() throws {
        let env = try cluster()
        let last = try env.core("n1").log.lastIndex()
        #expect(try env.core("n1").progress(of: "n2")?.match == last)
        try env.replace("n2", storage: MemoryStorage(conf: ConfState(voters: ["n1", "n2", "n3"])), config: plainConfig())
        try env.tick("n1")
        try env.stabilize()
        #expect(try env.core("n2").log.lastIndex() == last)
        #expect(try env.core("n2").log.committed == (try env.core("n1").log.committed))
        #expect(try env.core("n1").progress(of: "n2")?.match == last)
    }

    // A late or duplicated heartbeat answer from before the follower caught up says
    // its log ended lower than the leader's match now; that alone is no proof of loss
    // and must not lower the match (aegis-sim seed 1116 stalled when it did). Only an
    // answer whose last index is below the commit of the heartbeat it answers is.
    @Test func test_heartbeat_staleAnswerDoesNotLowerTheMatch() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let match = try #require(try env.core("n1").progress(of: "n2")?.match)
        #expect(match > 2)
        try env.with("n1") {
            try $0.step(message("n2", "n1", .heartbeatResponse(HeartbeatResponse(
                term: term, followerID: "n2", requestsAppend: true, lastIndex: 1, heartbeatCommit: 1))))
        }
        #expect(try env.core("n1").progress(of: "n2")?.match == match)
        try env.with("n1") {
            try $0.step(message("n2", "n1", .heartbeatResponse(HeartbeatResponse(
                term: term, followerID: "n2", requestsAppend: true, lastIndex: 1, heartbeatCommit: match))))
        }
        #expect(try env.core("n1").progress(of: "n2")?.match == 1)
    }

    @Test func test_hostile_absurdSnapshotOffsetIsRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        let meta = SnapshotMetadata(index: 100, term: term, confState: ConfState(voters: ["n1", "n2", "n3"]))
        try expectRefused(env, message("n1", "n2", .installSnapshot(InstallSnapshotRequest(
            term: term, leaderID: "n1", metadata: meta, offset: .max, data: [1, 2, 3], done: false))),
            "installSnapshot.offset")
        try expectRefused(env, message("n1", "n2", .installSnapshot(InstallSnapshotRequest(
            term: term, leaderID: "n1", metadata: meta, offset: RaftMessage.maxTermOrIndex - 1, data: [1, 2, 3],
            done: true))), "out of range")
        var noVoters = meta
        noVoters.confState = ConfState()
        try expectRefused(env, message("n1", "n2", .installSnapshot(InstallSnapshotRequest(
            term: term, leaderID: "n1", metadata: noVoters, offset: 0, data: [1], done: true))), "no voters")
    }

    // A gap in snapshot offsets is legitimate (chunks are reordered or duplicated), so
    // it is not refused: the follower stores nothing and tells the leader where it is.
    @Test func test_hostile_snapshotChunkWithGapStoresNothing() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        var core = try env.core("n2")
        let meta = SnapshotMetadata(index: 100, term: term, confState: ConfState(voters: ["n1", "n2", "n3"]))
        func chunk(_ offset: UInt64, _ data: [UInt8], done: Bool) throws -> [String] {
            try core.step(message("n1", "n2", .installSnapshot(InstallSnapshotRequest(
                term: term, leaderID: "n1", metadata: meta, offset: offset, data: data, done: done))))
            let rd = try core.ready()
            #expect(rd.snapshot == nil && rd.entries.isEmpty)
            core.advance(rd)
            return rd.messages.map(InteractionEnv.describe)
        }
        #expect(try chunk(0, [1, 2, 3], done: false) == ["n2->n1 SnapResp term=\(term) snap=100 next=3"])
        #expect(try chunk(1000, [4, 5, 6], done: true) == ["n2->n1 SnapResp term=\(term) snap=100 next=3"])
        #expect(try chunk(1 << 40, [4], done: true) == ["n2->n1 SnapResp term=\(term) snap=100 next=0 rejected"])
        #expect(core.stats.snapshotChunksRefused == 1)  // past maxSnapshotBytes
        #expect(core.stats.snapshotsInstalled == 0)
    }

    @Test func test_hostile_hugeTermIsRefused() throws {
        let env = try cluster()
        let last = try env.core("n2").log.lastIndex()
        // term + 1 of such a term used to trap when the receiver campaigned.
        try expectRefused(env, message("n3", "n2", .vote(VoteRequest(
            term: .max, candidateID: "n3", lastLogIndex: last, lastLogTerm: 2))), "term")
        try expectRefused(env, message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: .max, leaderID: "n1", prevLogIndex: last, prevLogTerm: 2, entries: [], leaderCommit: last))), "term")
        try expectRefused(env, message("n1", "n2", .timeoutNow(term: RaftMessage.maxTermOrIndex + 1)), "term")
    }

    @Test func test_hostile_messageToAnotherNodeOrFromItselfIsRefused() throws {
        let env = try cluster()
        let term = try env.core("n1").term
        var core = try env.core("n2")
        let before = try Observed(core)
        #expect(throws: RaftError.self) {
            try core.step(message("n1", "n9", .heartbeat(HeartbeatRequest(term: term, leaderID: "n1", commitIndex: 0))))
        }
        #expect(throws: RaftError.self) {
            try core.step(message("n2", "n2", .heartbeat(HeartbeatRequest(term: term, leaderID: "n2", commitIndex: 0))))
        }
        #expect(try Observed(core) == before)
        // A payload that names another sender than the message's.
        try expectRefused(env, message("n3", "n2", .heartbeat(HeartbeatRequest(
            term: term, leaderID: "n1", commitIndex: 0))), "is not the sender")
    }

    // MARK: Heartbeat commit safety (Raft §5.3)

    // A heartbeat from a new leader must not commit a stale entry that this follower
    // holds at the commit index: only an append from that leader can confirm the entry.
    @Test func test_heartbeat_doesNotCommitUnconfirmedEntries() throws {
        // n2 holds entry 3 from term 1 (never committed); the leader of term 2 has a
        // different entry 3.
        let s = try storage(terms: [1, 1, 1], voters: ["n1", "n2", "n3"], term: 1)
        var core = try RaftCore(id: "n2", config: plainConfig(), storage: s)
        try core.step(message("n1", "n2", .heartbeat(HeartbeatRequest(term: 2, leaderID: "n1", commitIndex: 3))))
        #expect(core.log.committed == 0)
        let rd = try core.ready()
        #expect(rd.committedEntries.isEmpty)
        #expect(rd.messages.map(InteractionEnv.describe) == ["n2->n1 HeartbeatResp term=2 wants-append last=3"])
        core.advance(rd)
        // An append confirms the log up to 2: now the commit may move to 2, not 3.
        try core.step(message("n1", "n2", .appendEntries(AppendEntriesRequest(
            term: 2, leaderID: "n1", prevLogIndex: 2, prevLogTerm: 1, entries: [], leaderCommit: 3))))
        #expect(core.log.committed == 2)
        try core.step(message("n1", "n2", .heartbeat(HeartbeatRequest(term: 2, leaderID: "n1", commitIndex: 3))))
        #expect(core.log.committed == 2)
    }

    // A follower that restarted forgot what it confirmed; the leader's heartbeat asks
    // it to commit further: it asks for an append, and catches up without new writes.
    @Test func test_heartbeat_restartedFollowerCatchesUpTheCommitIndex() throws {
        let env = try InteractionEnv(count: 3, config: plainConfig())
        try env.elect("n1")
        try env.propose("n1", "x")
        try env.deliver()  // appends out
        try env.deliver()  // acknowledgements in: n1 commits
        env.drop(where: { _ in true })  // the commit never reaches the followers
        let commit = try env.core("n1").log.committed
        #expect(try env.core("n2").log.committed < commit)
        try env.replace("n2", storage: try #require(env.storages["n2"]), config: plainConfig())
        try env.tick("n1")  // heartbeat
        try env.stabilize()
        #expect(try env.core("n2").log.committed == commit)
    }
}
