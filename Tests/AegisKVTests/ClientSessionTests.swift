@testable import AegisKV
import AegisRaft
import Testing

/// Exactly-once writes through client sessions: retries answered from the kept reply,
/// expiry and eviction decided from the log alone, and sessions carried by snapshots.
@Suite struct ClientSessionTests {
    /// Applies `command` as the next entry with leader time `time`.
    @discardableResult
    static func apply(_ machine: inout StateMachine, _ command: Command, time: UInt64 = 1_000) -> CommandResult {
        let index = machine.appliedIndex + 1
        return machine.apply(LogEntry(index: index, term: 1, data: command.encoded(), timestamp: time))
    }

    static func open(_ machine: inout StateMachine, time: UInt64 = 1_000) -> UInt64 {
        UInt64(apply(&machine, .openSession, time: time).integer)
    }

    static func incr(_ session: UInt64, _ sequence: UInt64, acknowledged: UInt64 = 0) -> Command {
        .session(ClientSessionRequest(session: session, sequence: sequence, acknowledged: acknowledged),
                 .increment("counter", by: 1))
    }

    @Test func test_retriedWrite_isAppliedOnceAndAnsweredWithTheFirstReply() {
        var machine = StateMachine()
        let session = Self.open(&machine)
        #expect(session == 1)
        let first = Self.apply(&machine, Self.incr(session, 1))
        let retry = Self.apply(&machine, Self.incr(session, 1))
        #expect(first.error == nil && first.value == bytes("1"))
        #expect(retry == first)
        #expect(machine.value(for: "counter") == bytes("1"))
        // Out of order across connections: 3 before 2, then a retry of 2.
        Self.apply(&machine, Self.incr(session, 3))
        let second = Self.apply(&machine, Self.incr(session, 2))
        #expect(second.value == bytes("3"))
        #expect(Self.apply(&machine, Self.incr(session, 2)).value == bytes("3"))
        #expect(machine.value(for: "counter") == bytes("3"))
    }

    @Test func test_acknowledgedReplies_areForgottenAndStaleSequencesRefused() {
        var machine = StateMachine()
        let session = Self.open(&machine)
        Self.apply(&machine, Self.incr(session, 1))
        Self.apply(&machine, Self.incr(session, 2, acknowledged: 1))
        #expect(machine.sessions[session]?.replies.keys.sorted() == [2])
        let stale = Self.apply(&machine, Self.incr(session, 1, acknowledged: 1))
        #expect(stale.error == .sessionSequenceStale(sequence: 1, acknowledged: 1))
        #expect(machine.value(for: "counter") == bytes("2"))
    }

    @Test func test_unknownSession_changesNothing() {
        var machine = StateMachine()
        let result = Self.apply(&machine, Self.incr(99, 1))
        #expect(result.error == .sessionExpired(session: 99))
        #expect(machine.value(for: "counter") == nil)
    }

    @Test func test_sessions_expireByLeaderTimeAndByCount() {
        var limits = StateMachine.Limits()
        limits.maxClientSessions = 2
        limits.sessionTimeout = 10_000
        var machine = StateMachine(limits: limits)
        let a = Self.open(&machine, time: 1_000)
        let b = Self.open(&machine, time: 2_000)
        Self.apply(&machine, Self.incr(a, 1), time: 3_000)  // a is now the most recently used
        let c = Self.open(&machine, time: 4_000)  // evicts b, the least recently used
        #expect(Set(machine.sessions.keys) == [a, c])
        #expect(Self.apply(&machine, Self.incr(b, 1), time: 4_000).error == .sessionExpired(session: b))
        // 10 s of leader time after a's last use, a expires; c (used at 4 s) does not yet.
        let late = Self.apply(&machine, Self.incr(a, 2), time: 13_500)
        #expect(late.error == .sessionExpired(session: a))
        #expect(machine.sessions[c] != nil)
        #expect(machine.value(for: "counter") == bytes("1"))
    }

    @Test func test_window_isBounded() {
        var limits = StateMachine.Limits()
        limits.maxSessionWindow = 2
        var machine = StateMachine(limits: limits)
        let session = Self.open(&machine)
        Self.apply(&machine, Self.incr(session, 1))
        Self.apply(&machine, Self.incr(session, 2))
        #expect(Self.apply(&machine, Self.incr(session, 3)).error == .sessionWindowFull(limit: 2))
        #expect(Self.apply(&machine, Self.incr(session, 3, acknowledged: 2)).error == nil)
        #expect(machine.value(for: "counter") == bytes("3"))
    }

    @Test func test_largeReplies_areNotKept() {
        var limits = StateMachine.Limits()
        limits.maxSessionReplyBytes = 8
        var machine = StateMachine(limits: limits)
        let session = Self.open(&machine)
        let write = Command.session(ClientSessionRequest(session: session, sequence: 1, acknowledged: 0),
                                    .getSet("k", bytes("a long value")))
        #expect(Self.apply(&machine, write).error == nil)
        #expect(Self.apply(&machine, write).error == .sessionReplyNotKept(sequence: 1))
        #expect(machine.value(for: "k") == bytes("a long value"))
    }

    @Test func test_sessions_surviveSnapshots() throws {
        var machine = StateMachine()
        let session = Self.open(&machine)
        let first = Self.apply(&machine, Self.incr(session, 1))
        Self.apply(&machine, .session(ClientSessionRequest(session: session, sequence: 2, acknowledged: 0),
                                      .compareAndSwap("cas", expected: .version(5), new: [1])))
        var restored = StateMachine()
        try restored.restore(fromChunks: machine.snapshotChunks(chunkSize: 7))
        #expect(restored.sessions == machine.sessions)
        #expect(restored.digest() == machine.digest())
        #expect(Self.apply(&restored, Self.incr(session, 1)) == first)
        #expect(restored.value(for: "counter") == bytes("1"))
        // A session table changes the digest: replicas must agree on it.
        var other = StateMachine()
        try other.restore(fromChunks: machine.snapshotChunks())
        other.sessions = [:]
        #expect(other.digest() != machine.digest())
    }

    @Test func test_damagedSessionsSection_isRefusedAndChangesNothing() {
        var machine = StateMachine()
        let session = Self.open(&machine)
        Self.apply(&machine, Self.incr(session, 1))
        var block = KVSnapshotSection.block([KVSnapshotSection(tag: KVSnapshotSection.sessionsTag, body: [5, 1])])
        // A well-framed section whose body is garbage: the snapshot reads, restore refuses it.
        var damaged = Array(machine.snapshotData().dropLast(4))
        let sections = KVSnapshotSection.block(machine.snapshotSections())
        damaged.removeLast(sections.count)
        damaged += block
        var crc = CRC32C()
        crc.update(damaged)
        damaged.appendUInt32LE(crc.value)
        var target = StateMachine()
        Self.apply(&target, .set("keep", [1]))
        let before = target.digest()
        #expect(throws: KVError.self) { try target.restore(fromChunks: [damaged]) }
        #expect(target.digest() == before)
        // An unknown section tag is refused while reading.
        block = KVSnapshotSection.block([KVSnapshotSection(tag: 9, body: [])])
        damaged = Array(machine.snapshotData().dropLast(4 + sections.count)) + block
        crc = CRC32C()
        crc.update(damaged)
        damaged.appendUInt32LE(crc.value)
        #expect(throws: KVError.malformedSnapshot("unknown section tag 9")) { try target.restore(fromChunks: [damaged]) }
    }

    @Test func test_codec_roundTripsAndRefusesNesting() throws {
        let command = Self.incr(7, 9, acknowledged: 3)
        #expect(try Command(decoding: command.encoded()) == command)
        #expect(command.encoded().count == command.encodedSize)
        #expect(try Command(decoding: Command.openSession.encoded()) == .openSession)
        let nested = Command.session(ClientSessionRequest(session: 1, sequence: 1, acknowledged: 0), command)
        #expect(throws: KVError.self) { try Command(decoding: nested.encoded()) }
        let read = Command.session(ClientSessionRequest(session: 1, sequence: 1, acknowledged: 0), .get("k"))
        #expect(throws: KVError.self) { try Command(decoding: read.encoded()) }
    }

    @Test func test_errorCodec_roundTripsEveryCase() throws {
        let errors: [KVError] = [
            .emptyKey, .keyTooLarge(size: 1, limit: 2), .valueTooLarge(size: 3, limit: 4), .compareFailed(currentVersion: 5),
            .notAnInteger, .incrementOverflow(current: -6, amount: Int64.min), .wrongType,
            .collectionTooLarge(size: 7, limit: 8), .hashValueNotInteger, .collectionFailed("why"),
            .unknownCustomCommand(name: "n"), .customCommandRejected(name: "n", reason: "r"),
            .alreadyApplied(index: 9, appliedIndex: 10), .unsupportedEncodingVersion(11), .malformedCommand("m"),
            .malformedSnapshot("s"), .snapshotChecksumMismatch(expected: 12, actual: UInt32.max),
            .sessionExpired(session: 13), .sessionSequenceStale(sequence: 14, acknowledged: 15),
            .sessionWindowFull(limit: 16), .sessionReplyNotKept(sequence: 17),
        ]
        for error in errors {
            var bytes: [UInt8] = []
            error.encode(into: &bytes)
            var reader = bytes.withUnsafeBytes { raw in Array(raw) }
            let decoded = try reader.withUnsafeBytes { raw throws(KVError) in
                var byteReader = ByteReader(raw)
                let value = try KVError(decoding: &byteReader)
                #expect(byteReader.remaining == 0)
                return value
            }
            #expect(decoded == error)
            reader.removeAll()
        }
    }
}
