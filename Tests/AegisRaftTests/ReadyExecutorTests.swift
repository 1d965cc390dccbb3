@testable import AegisRaft
import Testing

/// Records the order in which the executor calls a shell's steps.
private final class RecordingShell: ReadyShell {
    var pending: [Ready]
    var calls: [String] = []
    init(_ readies: [Ready]) { pending = readies }
    func nextReady() throws -> Ready? { pending.isEmpty ? nil : pending.removeFirst() }
    func send(_ messages: [RaftMessage]) {
        calls.append("send " + messages.map { $0.isLeaderAppend ? "append" : "other" }.joined(separator: ","))
    }
    func installSnapshot(_ snapshot: Snapshot) throws { calls.append("snapshot") }
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws { calls.append("persist") }
    func apply(_ entries: [LogEntry]) throws { calls.append("apply " + entries.map { "\($0.index)" }.joined(separator: ",")) }
    func accept(_ readStates: [ReadState]) { calls.append("reads") }
    func softStateChanged(_ state: SoftState) { calls.append("role") }
    func advance(_ ready: Ready) { calls.append("advance") }
    func advanced(_ ready: Ready) throws { calls.append("advanced") }
}

@Suite struct ReadyExecutorTests {
    static func ready() -> Ready {
        let a: NodeID = "a", b: NodeID = "b"
        let append = RaftMessage(from: a, to: b, payload: .appendEntries(AppendEntriesRequest(
            term: 1, leaderID: a, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0)))
        let vote = RaftMessage(from: a, to: b, payload: .voteResponse(VoteResponse(term: 1, voteGranted: true, voterID: a)))
        return Ready(softState: SoftState(leader: a, role: .leader), hardState: RaftState(term: 1, votedFor: a, commitIndex: 1),
                     entries: [LogEntry(index: 1, term: 1, data: [1])], snapshot: nil,
                     committedEntries: [LogEntry(index: 1, term: 1, data: [1])], messages: [append, vote],
                     readStates: [ReadState(index: 1, context: 9)], mustSync: true, shouldSnapshot: false)
    }

    @Test func test_executor_followsTheDocumentedOrder() throws {
        let shell = RecordingShell([Self.ready()])
        try ReadyExecutor().run(shell)
        #expect(shell.calls == ["send append", "persist", "send other", "apply 1", "reads", "role", "advance", "advanced"])
    }

    /// Committed entries this node made durable before the `Ready` (below its first new
    /// entry) are applied before its write; the others, and the read states that may
    /// wait for them, after it.
    @Test func test_executor_appliesDurableCommittedEntriesBeforeTheWrite() throws {
        var rd = Self.ready()
        rd.entries = [LogEntry(index: 3, term: 1, data: [3]), LogEntry(index: 4, term: 1, data: [4])]
        rd.committedEntries = [1, 2, 3].map { LogEntry(index: $0, term: 1, data: [UInt8($0)]) }
        #expect(rd.durableCommittedCount == 2)
        let shell = RecordingShell([rd])
        try ReadyExecutor().run(shell)
        #expect(shell.calls == ["send append", "apply 1,2", "persist", "send other", "apply 3", "reads", "role",
                                "advance", "advanced"])
    }

    /// With nothing new to write, every committed entry is durable: applied and the
    /// reads taken before the (hard state) write.
    @Test func test_executor_servesReadsBeforeTheWriteWhenAllIsDurable() throws {
        var rd = Self.ready()
        rd.entries = []
        rd.mustSync = false
        rd.committedEntries = [1, 2].map { LogEntry(index: $0, term: 1, data: [UInt8($0)]) }
        #expect(rd.durableCommittedCount == 2)
        let shell = RecordingShell([rd])
        try ReadyExecutor().run(shell)
        #expect(shell.calls == ["send append", "apply 1,2", "reads", "persist", "send other", "role", "advance",
                                "advanced"])
        // A committed entry that is still among the new entries is not durable here.
        rd.entries = [LogEntry(index: 1, term: 1, data: [1])]
        #expect(rd.durableCommittedCount == 0)
    }

    @Test func test_executor_mutationsChangeTheOrder() throws {
        let early = RecordingShell([Self.ready()])
        try ReadyExecutor(mutation: .sendBeforePersist).run(early)
        #expect(early.calls == ["send append,other", "persist", "apply 1", "reads", "role", "advance", "advanced"])
        let apply = RecordingShell([Self.ready()])
        try ReadyExecutor(mutation: .applyBeforePersist).run(apply)
        #expect(apply.calls == ["send append", "apply 1", "reads", "role", "advance", "persist", "send other", "advanced"])
    }

    @Test func test_executor_aFailedWriteIsNotAdvanced() {
        final class Failing: ReadyShell {
            var given = false
            var advanced = false
            func nextReady() throws -> Ready? { defer { given = true }; return given ? nil : ReadyExecutorTests.ready() }
            func send(_ messages: [RaftMessage]) {}
            func installSnapshot(_ snapshot: Snapshot) throws {}
            func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws { throw RaftError.storage("disk") }
            func apply(_ entries: [LogEntry]) throws {}
            func accept(_ readStates: [ReadState]) {}
            func softStateChanged(_ state: SoftState) {}
            func advance(_ ready: Ready) { advanced = true }
            func advanced(_ ready: Ready) throws {}
        }
        let shell = Failing()
        #expect(throws: RaftError.self) { try ReadyExecutor().run(shell) }
        #expect(!shell.advanced)
    }
}
