public import AegisRaft

/// Exactly-once writes for clients that retry (Raft thesis §6.3).
///
/// A client opens a session (`Command.openSession`, its ID is the entry's log index,
/// unique in the cluster), then sends each write as `Command.session(_:)` with the
/// session ID, a sequence number it never reuses, and the highest sequence number
/// below which it has every reply (`acknowledged`). The state machine keeps the reply
/// of every sequence number above `acknowledged` that it applied, so a retried write
/// (a client that timed out, lost its connection or saw its leader fail) is answered
/// from that cache instead of being applied again. Writes of one session may be
/// applied out of order (a client pipelines them over several connections).
///
/// Everything here is decided at apply time from the log alone, so every replica
/// keeps the same sessions and the table is part of the snapshot:
/// - a session unused for `Limits.sessionTimeout` milliseconds of leader time
///   (`LogEntry.timestamp`) expires; when `Limits.maxClientSessions` are open, opening
///   another expires the least recently used one;
/// - a write on an expired or unknown session fails with `.sessionExpired` and changes
///   nothing: the client cannot know whether an earlier attempt was applied, so it
///   must report an unknown outcome rather than retry (retrying could apply it twice);
/// - a sequence number at or below `acknowledged` fails with `.sessionSequenceStale`;
/// - at most `Limits.maxSessionWindow` replies are kept per session; a write beyond
///   that fails with `.sessionWindowFull` and changes nothing;
/// - a reply larger than `Limits.maxSessionReplyBytes` is not kept: a retry of that
///   write is answered with `.sessionReplyNotKept` (it was applied once).
public struct ClientSessionRequest: Sendable, Hashable {
    /// The session ID `openSession` returned.
    public var session: UInt64
    /// This write's sequence number (1 or more), never reused within the session.
    public var sequence: UInt64
    /// Every write of the session numbered at or below this has its reply at the
    /// client; the state machine may forget them.
    public var acknowledged: UInt64

    /// Creates a session request header.
    public init(session: UInt64, sequence: UInt64, acknowledged: UInt64) {
        self.session = session
        self.sequence = sequence
        self.acknowledged = acknowledged
    }
}

/// One open client session.
struct ClientSession: Sendable, Hashable {
    /// The index of the last entry that used the session.
    var lastUsedIndex: LogIndex
    /// The leader time of that entry, in milliseconds since the Unix epoch.
    var lastUsedTime: UInt64
    /// Replies kept for retries, by sequence number (all above `acknowledged`).
    var replies: [UInt64: CommandResult]
    /// The highest `acknowledged` the client sent.
    var acknowledged: UInt64
}

extension StateMachine {
    /// Opens a session whose ID is `index`; `integer` of the result is the ID.
    mutating func openSession(at index: LogIndex, timestamp: UInt64) -> CommandResult {
        expireSessions(now: timestamp)
        if sessions.count >= limits.maxClientSessions,
           let oldest = sessions.min(by: { $0.value.lastUsedIndex < $1.value.lastUsedIndex })?.key {
            sessions[oldest] = nil
        }
        if limits.maxClientSessions > 0 {
            sessions[index] = ClientSession(lastUsedIndex: index, lastUsedTime: timestamp, replies: [:], acknowledged: 0)
        }
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(truncatingIfNeeded: index)
        if limits.maxClientSessions == 0 { result.error = .sessionExpired(session: index) }
        return result
    }

    /// Applies `command` once for the session write `request`, or answers a retry from
    /// the kept reply.
    mutating func applySession(_ request: ClientSessionRequest, _ command: Command, at index: LogIndex,
                               timestamp: UInt64) -> CommandResult {
        expireSessions(now: timestamp)
        guard var session = sessions[request.session] else {
            return failure(.sessionExpired(session: request.session), at: index)
        }
        session.lastUsedIndex = index
        session.lastUsedTime = Swift.max(session.lastUsedTime, timestamp)
        if request.acknowledged > session.acknowledged {
            session.acknowledged = request.acknowledged
            session.replies = session.replies.filter { $0.key > request.acknowledged }
        }
        defer { sessions[request.session] = session }
        if let kept = session.replies[request.sequence] { return kept }
        guard request.sequence > session.acknowledged else {
            return failure(.sessionSequenceStale(sequence: request.sequence, acknowledged: session.acknowledged), at: index)
        }
        guard session.replies.count < limits.maxSessionWindow else {
            return failure(.sessionWindowFull(limit: limits.maxSessionWindow), at: index)
        }
        // The inner command runs as this entry (`appliedIndex` is already `index`).
        var result = execute(command, at: index, timestamp: timestamp)
        result.detachBytes()
        session.replies[request.sequence] = result.keptSize <= limits.maxSessionReplyBytes
            ? result
            : CommandResult(index: index, revision: revision, error: .sessionReplyNotKept(sequence: request.sequence))
        return result
    }

    /// Drops sessions unused for longer than `limits.sessionTimeout` at leader time `now`.
    mutating func expireSessions(now: UInt64) {
        guard !sessions.isEmpty, now > limits.sessionTimeout else { return }
        let cutoff = now - limits.sessionTimeout
        if sessions.values.contains(where: { $0.lastUsedTime < cutoff }) {
            sessions = sessions.filter { $0.value.lastUsedTime >= cutoff }
        }
    }
}

extension CommandResult {
    /// Copies value bytes that are views of a log entry into arrays of their own, so a
    /// kept reply does not hold the entry's buffer.
    mutating func detachBytes() {
        valueBytes = valueBytes.map { Array($0)[...] }
        previousBytes = previousBytes.map { Array($0)[...] }
    }

    /// The bytes a kept reply holds (values and elements).
    var keptSize: Int {
        (valueBytes?.count ?? 0) + (previousBytes?.count ?? 0) + elements.reduce(0) { $0 + $1.count }
    }
}

// MARK: Snapshot encoding

// The sessions section of a snapshot (section tag 1, see KVSnapshot.swift), varints:
//
//     session count, then per session in ascending ID order:
//       ID, last used index, last used time, acknowledged, reply count,
//       then per reply in ascending sequence order: sequence, the reply (CommandResult)
//
// A CommandResult: index, version, revision, key count, zig-zag integer, flags
// (bit 0 value, bit 1 previous value, bit 2 error), the value and previous value
// (length-prefixed, when present), element count and elements (length-prefixed), the
// error (KVError encoding, when present).

extension StateMachine {
    /// The sessions section's bytes; empty when there are no sessions.
    func encodedSessions() -> [UInt8] {
        guard !sessions.isEmpty else { return [] }
        var bytes: [UInt8] = []
        bytes.appendVarint(UInt64(sessions.count))
        for id in sessions.keys.sorted() {
            guard let session = sessions[id] else { continue }
            bytes.appendVarint(id)
            bytes.appendVarint(session.lastUsedIndex)
            bytes.appendVarint(session.lastUsedTime)
            bytes.appendVarint(session.acknowledged)
            bytes.appendVarint(UInt64(session.replies.count))
            for sequence in session.replies.keys.sorted() {
                bytes.appendVarint(sequence)
                session.replies[sequence]?.encode(into: &bytes)
            }
        }
        return bytes
    }

    /// Reads a sessions section.
    static func decodeSessions(_ raw: [UInt8], limits: Limits) throws(KVError) -> [UInt64: ClientSession] {
        try raw.withUnsafeBytes { buffer in
            Result { () throws(KVError) in
                var reader = ByteReader(buffer)
                let count = try reader.readCount("session count", minimumBytesEach: 5)
                guard count <= limits.maxClientSessions else {
                    throw .malformedSnapshot("\(count) client sessions exceed the limit of \(limits.maxClientSessions)")
                }
                var sessions: [UInt64: ClientSession] = [:]
                var previousID: UInt64?
                for _ in 0 ..< count {
                    let id = try reader.readCommandVarint("session ID")
                    guard previousID.map({ $0 < id }) ?? true else { throw .malformedSnapshot("session IDs out of order") }
                    previousID = id
                    var session = ClientSession(lastUsedIndex: try reader.readCommandVarint("session index"),
                                                lastUsedTime: try reader.readCommandVarint("session time"),
                                                replies: [:], acknowledged: try reader.readCommandVarint("acknowledged"))
                    let replies = try reader.readCount("reply count", minimumBytesEach: 7)
                    guard replies <= limits.maxSessionWindow else {
                        throw .malformedSnapshot("\(replies) kept replies exceed the window of \(limits.maxSessionWindow)")
                    }
                    var previousSequence = session.acknowledged
                    for _ in 0 ..< replies {
                        let sequence = try reader.readCommandVarint("sequence")
                        guard sequence > previousSequence else { throw .malformedSnapshot("reply sequence numbers out of order") }
                        previousSequence = sequence
                        session.replies[sequence] = try CommandResult(decoding: &reader)
                    }
                    sessions[id] = session
                }
                guard reader.remaining == 0 else { throw .malformedSnapshot("\(reader.remaining) bytes after the sessions") }
                return sessions
            }
        }.mapError { error in
            if case .malformedCommand(let why) = error { return KVError.malformedSnapshot("sessions: \(why)") }
            return error
        }.get()
    }
}

extension CommandResult {
    /// Appends the encoding described above.
    func encode(into bytes: inout [UInt8]) {
        bytes.appendVarint(index)
        bytes.appendVarint(version)
        bytes.appendVarint(revision)
        bytes.appendVarint(UInt64(Swift.max(keyCount, 0)))
        bytes.appendVarint(zigZag(integer))
        bytes.append((valueBytes == nil ? 0 : 1) | (previousBytes == nil ? 0 : 2) | (error == nil ? 0 : 4))
        if let valueBytes { bytes.appendLengthPrefixed(Array(valueBytes)) }
        if let previousBytes { bytes.appendLengthPrefixed(Array(previousBytes)) }
        bytes.appendVarint(UInt64(elements.count))
        for element in elements { bytes.appendLengthPrefixed(element) }
        error?.encode(into: &bytes)
    }

    /// Reads the encoding described above.
    init(decoding reader: inout ByteReader) throws(KVError) {
        let index = try reader.readCommandVarint("reply index")
        let version = try reader.readCommandVarint("reply version")
        let revision = try reader.readCommandVarint("reply revision")
        let keyCount = try reader.readCommandVarint("reply key count")
        let integer = unZigZag(try reader.readCommandVarint("reply integer"))
        guard let flags = reader.readByte(), flags < 8 else { throw .malformedCommand("bad reply flags") }
        let value = flags & 1 != 0 ? try reader.readField("reply value") : nil
        let previous = flags & 2 != 0 ? try reader.readField("reply previous value") : nil
        self.init(index: index, value: value, previousValue: previous, version: version, revision: revision)
        guard keyCount <= UInt64(Int.max) else { throw .malformedCommand("reply key count out of range") }
        self.keyCount = Int(keyCount)
        self.integer = integer
        let elements = try reader.readCount("reply element count", minimumBytesEach: 1)
        for _ in 0 ..< elements { self.elements.append(try reader.readField("reply element")) }
        if flags & 4 != 0 { self.error = try KVError(decoding: &reader) }
    }
}
