import AegisKV
import AegisRaft
import AegisReplication
import AegisServer
import NIOCore

/// An in-memory `KVBackend` over a real `StateMachine`: every command is "committed"
/// at the next index at once. Failures and cluster status are set by the test.
actor FakeBackend: KVBackend {
    var machine = StateMachine()
    var nextIndex: LogIndex = 0
    /// Thrown by every call while set.
    var failure: BackendError?
    var nodeStatus: BackendStatus
    /// The size of every `execute(_ commands:)` batch, in order.
    var batchSizes: [Int] = []
    /// The `stale` flag of every read, in order.
    var readStaleFlags: [Bool] = []
    /// Administrative calls, as text, in order.
    var adminCalls: [String] = []
    /// Commands received by `execute`, and the largest encoded one (bytes).
    var executedCount = 0
    var largestCommandBytes = 0
    /// When set, `execute(_ commands:)` lets other callers in between its commands, as
    /// a real node applying a batch entry by entry may serve reads in between.
    var yieldsBetweenCommands = false
    /// The leader timestamp of the next entries (milliseconds): the apply clock of
    /// expiring keys; tests move it with `advanceClock(by:)`.
    var clock: UInt64 = 1_000_000
    /// The "log": every executed command as an entry; entries before `logFirstIndex`
    /// are compacted away (`compactLog(through:)`).
    var log: [LogEntry] = []
    var logFirstIndex: LogIndex = 1

    init() {
        nodeStatus = BackendStatus(
            nodeID: "node1", clusterID: "test", role: .leader, leader: LeaderHint(id: "node1", clientAddress: "127.0.0.1:7001"),
            term: 3, commitIndex: 0, appliedIndex: 0,
            members: [
                MemberStatus(id: "node1", role: .leader, peerAddress: "127.0.0.1:9001", clientAddress: "127.0.0.1:7001", matchIndex: 0, lag: 0),
                MemberStatus(id: "node2", role: .follower, peerAddress: "127.0.0.1:9002", clientAddress: "127.0.0.1:7002", matchIndex: 0, lag: 0),
            ])
    }

    func setFailure(_ failure: BackendError?) { self.failure = failure }

    func activeActiveConflicts(key: Key?, limit: Int, stale: Bool) async throws(BackendError) -> ActiveActiveConflictReport {
        if let failure { throw failure }
        return machine.activeActiveConflictReport(key: key, limit: limit)
    }
    func advanceClock(by milliseconds: UInt64) { clock += milliseconds }
    func setYieldsBetweenCommands(_ yields: Bool) { yieldsBetweenCommands = yields }
    func setStatus(_ update: @Sendable (inout BackendStatus) -> Void) { update(&nodeStatus) }

    func execute(_ command: Command) async throws(BackendError) -> CommandResult {
        if let failure { throw failure }
        executedCount += 1
        largestCommandBytes = max(largestCommandBytes, command.encodedSize)
        nextIndex += 1
        log.append(LogEntry(index: nextIndex, term: 1, data: command.encoded(), timestamp: clock))
        return machine.apply(command, at: nextIndex, timestamp: clock)
    }

    /// Drops the log entries up to `index`, as a snapshot would; an index past the
    /// last entry acts as a follower installing a leader's snapshot (the log jumps).
    func compactLog(through index: LogIndex) {
        log.removeAll { $0.index <= index }
        logFirstIndex = index + 1
        nextIndex = max(nextIndex, index)
    }

    func committedLog(after index: LogIndex, maxCount: Int, maxBytes: Int) async throws(BackendError) -> CommittedEntries {
        if let failure { throw failure }
        guard index < nextIndex, index + 1 >= logFirstIndex, maxCount > 0 else {
            return CommittedEntries(entries: [], commitIndex: nextIndex, firstIndex: logFirstIndex)
        }
        var entries: [LogEntry] = [], bytes = 0
        for entry in log where entry.index > index {
            if !entries.isEmpty && (entries.count >= maxCount || bytes + entry.byteSize > maxBytes) { break }
            entries.append(entry)
            bytes += entry.byteSize
        }
        return CommittedEntries(entries: entries, commitIndex: nextIndex, firstIndex: logFirstIndex)
    }

    func execute(_ commands: [Command]) async -> [Result<CommandResult, BackendError>] {
        batchSizes.append(commands.count)
        var results: [Result<CommandResult, BackendError>] = []
        for command in commands {
            do { results.append(.success(try await execute(command))) } catch { results.append(.failure(error)) }
            if yieldsBetweenCommands { await Task.yield() }
        }
        return results
    }

    func read(_ keys: [Key], stale: Bool) async throws(BackendError) -> [KeyValue?] {
        if let failure { throw failure }
        readStaleFlags.append(stale)
        return keys.map { machine.get($0, now: clock) }
    }

    func count(stale: Bool) async throws(BackendError) -> Int {
        if let failure { throw failure }
        return machine.count
    }

    func digest() async throws(BackendError) -> (appliedIndex: LogIndex, digest: String) {
        if let failure { throw failure }
        return (machine.appliedIndex, machine.digestHex())
    }

    func status() async -> BackendStatus {
        var status = nodeStatus
        status.commitIndex = max(status.commitIndex, nextIndex)
        status.appliedIndex = max(status.appliedIndex, nextIndex)
        return status
    }

    func addMember(_ id: NodeID, peerAddress: String, clientAddress: String, asLearner: Bool) async throws(BackendError) {
        if let failure { throw failure }
        adminCalls.append("add \(id) \(peerAddress) \(clientAddress) learner=\(asLearner)")
        nodeStatus.members.append(MemberStatus(id: id, role: asLearner ? .learner : .follower, peerAddress: peerAddress, clientAddress: clientAddress))
    }

    func promoteMember(_ id: NodeID) async throws(BackendError) {
        if let failure { throw failure }
        adminCalls.append("promote \(id)")
    }

    func removeMember(_ id: NodeID) async throws(BackendError) {
        if let failure { throw failure }
        adminCalls.append("remove \(id)")
        nodeStatus.members.removeAll { $0.id == id }
    }

    func transferLeadership(to id: NodeID?) async throws(BackendError) {
        if let failure { throw failure }
        adminCalls.append("transfer \(id?.rawValue ?? "any")")
    }
}

/// Runs text commands through a session and returns the parsed replies.
func send(_ session: inout RESPSession, _ commands: [[String]], keepOpen: Bool = true) async throws -> [RESPValue] {
    var out = ByteBuffer()
    let open = await session.handle(commands.map { RESPRequest(arguments: $0.map { ByteBuffer(string: $0) }) }, into: &out)
    if keepOpen != open { throw TestFailure("the session's keep-open answer was \(open)") }
    var replies: [RESPValue] = []
    while let reply = try RESPValueParser.parse(&out) { replies.append(reply) }
    if out.readableBytes != 0 { throw TestFailure("\(out.readableBytes) bytes left after the replies") }
    return replies
}

/// Runs one text command and returns its reply.
func send(_ session: inout RESPSession, _ command: String...) async throws -> RESPValue {
    let replies = try await send(&session, [command])
    guard replies.count == 1, let reply = replies.first else { throw TestFailure("expected one reply, got \(replies)") }
    return reply
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
