public import AegisRaft

/// Why a command failed, a command could not be decoded, or a snapshot could not be
/// restored. A failed command or restore changes nothing.
public enum KVError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Keys must have at least one byte.
    case emptyKey
    /// The key is longer than the state machine's limit.
    case keyTooLarge(size: Int, limit: Int)
    /// The value is longer than the state machine's limit.
    case valueTooLarge(size: Int, limit: Int)
    /// A compare-and-swap found a different value or version; `currentVersion` is the
    /// key's version now (0 when the key does not exist).
    case compareFailed(currentVersion: UInt64)
    /// An increment found a value that is not a decimal 64-bit signed integer.
    case notAnInteger
    /// An increment would leave the range of a 64-bit signed integer.
    case incrementOverflow(current: Int64, amount: Int64)
    /// The key holds a value of another type than the command works on (Redis's
    /// `WRONGTYPE`); nothing changed.
    case wrongType
    /// A set or hash would grow beyond `StateMachine.Limits.maxCollectionSize`.
    case collectionTooLarge(size: Int, limit: Int)
    /// `HINCRBY` found a field value that is not a decimal 64-bit signed integer.
    case hashValueNotInteger
    /// A set or hash write could not be made (its CRDT metadata is exhausted); the
    /// text says why. Nothing changed.
    case collectionFailed(String)
    /// No custom command with this name is registered on this state machine.
    case unknownCustomCommand(name: String)
    /// A custom command's handler rejected the command.
    case customCommandRejected(name: String, reason: String)
    /// The entry was already applied (its index is at or below the applied index).
    case alreadyApplied(index: LogIndex, appliedIndex: LogIndex)
    /// The command bytes use an encoding version this code does not know.
    case unsupportedEncodingVersion(UInt8)
    /// The command bytes are not a valid command; the text says what is wrong.
    case malformedCommand(String)
    /// The snapshot bytes are not a valid snapshot; the text says what is wrong.
    case malformedSnapshot(String)
    /// The snapshot's checksum does not match its contents.
    case snapshotChecksumMismatch(expected: UInt32, actual: UInt32)
    /// The client session does not exist (never opened, or expired): the write was
    /// not applied now, and whether an earlier attempt was is unknown.
    case sessionExpired(session: UInt64)
    /// The session write's sequence number is at or below what the client
    /// acknowledged, so its reply is gone; nothing changed.
    case sessionSequenceStale(sequence: UInt64, acknowledged: UInt64)
    /// The session already keeps `limit` unacknowledged replies; nothing changed.
    case sessionWindowFull(limit: Int)
    /// The session write was applied once, but its reply was too large to keep for
    /// retries.
    case sessionReplyNotKept(sequence: UInt64)
    /// A watched key changed since it was watched, so the transaction was not applied
    /// (Redis's null `EXEC` reply).
    case transactionAborted
    /// The key does not exist (Redis `RENAME` of an absent key).
    case noSuchKey
    /// More keys match than the reply may hold (`KEYS`); use `SCAN`.
    case replyTooLarge(limit: Int)
    /// A deadline outside what 64-bit milliseconds can hold, once resolved.
    case invalidExpireTime
    /// The command cannot be part of a transaction (a nested transaction, a purge).
    case notAllowedInTransaction
    /// A client write reached a cluster that is not the primary (a DR standby, or a
    /// primary fenced by a failover); `primary` is where to write (empty: unknown).
    case readOnly(role: ClusterRole, epoch: UInt64, primary: String)
    /// A stream batch or DR transition carries an epoch below the cluster's: it comes
    /// from a cluster that a failover replaced. Nothing changed.
    case staleEpoch(received: UInt64, current: UInt64, primary: String)
    /// A stream batch reached a cluster that is not a standby. Nothing changed.
    case notStandby(role: ClusterRole, epoch: UInt64)
    /// A stream batch does not follow the link's cursor: it starts after `afterIndex`
    /// but only `cursor` is applied. Nothing changed; resend from `cursor`.
    case streamGap(source: String, cursor: UInt64, afterIndex: UInt64)
    /// An active-active batch carries a stamp further ahead of this cluster's apply
    /// clock than the accepted skew. Nothing changed; the link retries it.
    case clockSkew(source: String, aheadMillis: UInt64, limitMillis: UInt64)
    /// An active-active batch reached a cluster that is not in an active-active group.
    case activeActiveDisabled
    /// A conflict-resolution setting or command was refused (an unknown strategy or
    /// merge function, a conflict that is not open, a bad context token…). Nothing changed.
    case activeActiveConflict(String)
    /// A change of the active-active topology was refused (command 77: the result
    /// would break a topology rule, see `ActiveActiveTopology.validate(for:)`). Nothing changed.
    case activeActiveTopology(String)

    public var description: String {
        switch self {
        case .emptyKey:
            return "the key is empty; keys need at least one byte"
        case .keyTooLarge(let size, let limit):
            return "the key has \(size) bytes, more than the limit of \(limit)"
        case .valueTooLarge(let size, let limit):
            return "the value has \(size) bytes, more than the limit of \(limit)"
        case .compareFailed(let version):
            return version == 0
                ? "compare-and-swap failed: the key does not exist"
                : "compare-and-swap failed: the key is at version \(version) with a different value"
        case .notAnInteger:
            return "the value is not a decimal 64-bit signed integer, so it cannot be incremented"
        case .incrementOverflow(let current, let amount):
            return "incrementing \(current) by \(amount) would overflow a 64-bit signed integer"
        case .wrongType:
            return "Operation against a key holding the wrong kind of value"
        case .collectionTooLarge(let size, let limit):
            return "the set or hash would have \(size) members or fields, more than the limit of \(limit)"
        case .hashValueNotInteger:
            return "hash value is not an integer"
        case .collectionFailed(let why):
            return "the set or hash write failed: \(why)"
        case .unknownCustomCommand(let name):
            return "no custom command named '\(name)' is registered; register it on every replica before applying"
        case .customCommandRejected(let name, let reason):
            return "custom command '\(name)' rejected: \(reason)"
        case .alreadyApplied(let index, let applied):
            return "entry \(index) is already applied (applied index \(applied)); nothing changed"
        case .unsupportedEncodingVersion(let version):
            return "command encoding version \(version) is not supported (this build reads versions 1 to \(Command.encodingVersion))"
        case .malformedCommand(let why):
            return "malformed command: \(why)"
        case .malformedSnapshot(let why):
            return "malformed snapshot: \(why)"
        case .snapshotChecksumMismatch(let expected, let actual):
            return "snapshot checksum mismatch: stored \(hex32(expected)), computed \(hex32(actual)); the snapshot is corrupt"
        case .sessionExpired(let session):
            return "client session \(session) does not exist or expired; the write was not applied now, an earlier attempt may have been"
        case .sessionSequenceStale(let sequence, let acknowledged):
            return "sequence number \(sequence) is at or below the acknowledged \(acknowledged); its reply is gone and nothing changed"
        case .sessionWindowFull(let limit):
            return "the session keeps \(limit) unacknowledged replies already; acknowledge some before writing more"
        case .sessionReplyNotKept(let sequence):
            return "write \(sequence) of this session was applied once; its reply was too large to keep for a retry"
        case .transactionAborted:
            return "the transaction was not applied: a watched key changed"
        case .noSuchKey:
            return "no such key"
        case .replyTooLarge(let limit):
            return "more than \(limit) keys match; use SCAN, or raise the limit"
        case .invalidExpireTime:
            return "invalid expire time"
        case .notAllowedInTransaction:
            return "this command cannot be part of a transaction"
        case .readOnly(let role, let epoch, let primary):
            return "You can't write against a read only replica. primary: \(primary.isEmpty ? "unknown" : primary) "
                + "(this cluster is \(role) at epoch \(epoch))"
        case .staleEpoch(let received, let current, let primary):
            return "epoch \(received) is stale: this cluster is at epoch \(current)"
                + (primary.isEmpty ? "" : "; the primary is \(primary)")
        case .notStandby(let role, let epoch):
            return "this cluster is not a standby (it is \(role) at epoch \(epoch)); it takes no stream batches"
        case .streamGap(let source, let cursor, let after):
            return "the batch from \(source) starts after index \(after) but only \(cursor) is applied; resend from \(cursor)"
        case .clockSkew(let source, let ahead, let limit):
            return "the batch from \(source) has a timestamp \(ahead) ms ahead of this cluster's clock, more than the accepted \(limit) ms; check the clocks (NTP) of both clusters"
        case .activeActiveDisabled:
            return "this cluster is not in an active-active group; it takes no active-active batches"
        case .activeActiveConflict(let why):
            return "active-active conflict resolution: \(why)"
        case .activeActiveTopology(let why):
            return "active-active topology: \(why)"
        }
    }
}

private func hex32(_ value: UInt32) -> String {
    hexString([UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16),
               UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
}

// MARK: Encoding (kept session replies in snapshots; see ClientSessions.swift)
//
// A tag byte (the case's position in the list below, from 1), then the case's fields:
// integers as varints (zig-zag for signed ones), strings as length-prefixed UTF-8.

extension KVError {
    /// Appends the encoding.
    func encode(into bytes: inout [UInt8]) {
        func unsigned(_ values: UInt64...) { for value in values { bytes.appendVarint(value) } }
        func size(_ values: Int...) { for value in values { bytes.appendVarint(UInt64(Swift.max(value, 0))) } }
        func text(_ values: String...) { for value in values { bytes.appendLengthPrefixed(Array(value.utf8)) } }
        switch self {
        case .emptyKey: bytes.append(1)
        case .keyTooLarge(let s, let l): bytes.append(2); size(s, l)
        case .valueTooLarge(let s, let l): bytes.append(3); size(s, l)
        case .compareFailed(let v): bytes.append(4); unsigned(v)
        case .notAnInteger: bytes.append(5)
        case .incrementOverflow(let c, let a): bytes.append(6); unsigned(zigZag(c), zigZag(a))
        case .wrongType: bytes.append(7)
        case .collectionTooLarge(let s, let l): bytes.append(8); size(s, l)
        case .hashValueNotInteger: bytes.append(9)
        case .collectionFailed(let why): bytes.append(10); text(why)
        case .unknownCustomCommand(let name): bytes.append(11); text(name)
        case .customCommandRejected(let name, let reason): bytes.append(12); text(name, reason)
        case .alreadyApplied(let i, let a): bytes.append(13); unsigned(i, a)
        case .unsupportedEncodingVersion(let v): bytes.append(14); unsigned(UInt64(v))
        case .malformedCommand(let why): bytes.append(15); text(why)
        case .malformedSnapshot(let why): bytes.append(16); text(why)
        case .snapshotChecksumMismatch(let e, let a): bytes.append(17); unsigned(UInt64(e), UInt64(a))
        case .sessionExpired(let s): bytes.append(18); unsigned(s)
        case .sessionSequenceStale(let s, let a): bytes.append(19); unsigned(s, a)
        case .sessionWindowFull(let l): bytes.append(20); size(l)
        case .sessionReplyNotKept(let s): bytes.append(21); unsigned(s)
        case .transactionAborted: bytes.append(22)
        case .noSuchKey: bytes.append(23)
        case .replyTooLarge(let l): bytes.append(24); size(l)
        case .invalidExpireTime: bytes.append(25)
        case .notAllowedInTransaction: bytes.append(26)
        case .readOnly(let role, let epoch, let primary): bytes.append(27); unsigned(UInt64(role.rawValue), epoch); text(primary)
        case .staleEpoch(let received, let current, let primary): bytes.append(28); unsigned(received, current); text(primary)
        case .notStandby(let role, let epoch): bytes.append(29); unsigned(UInt64(role.rawValue), epoch)
        case .streamGap(let source, let cursor, let after): bytes.append(30); text(source); unsigned(cursor, after)
        case .clockSkew(let source, let ahead, let limit): bytes.append(70); text(source); unsigned(ahead, limit)
        case .activeActiveDisabled: bytes.append(71)
        case .activeActiveConflict(let why): bytes.append(72); text(why)
        case .activeActiveTopology(let why): bytes.append(73); text(why)
        }
    }

    /// Reads the encoding; a malformed one throws `.malformedCommand`.
    init(decoding reader: inout ByteReader) throws(KVError) {
        func unsigned() throws(KVError) -> UInt64 { try reader.readCommandVarint("error field") }
        func size() throws(KVError) -> Int {
            let value = try unsigned()
            guard value <= UInt64(Int.max) else { throw .malformedCommand("error size out of range") }
            return Int(value)
        }
        func text() throws(KVError) -> String {
            guard let text = String(validating: try reader.readField("error text"), as: UTF8.self) else {
                throw .malformedCommand("error text is not UTF-8")
            }
            return text
        }
        func role() throws(KVError) -> ClusterRole {
            guard let raw = UInt8(exactly: try unsigned()), let role = ClusterRole(rawValue: raw) else {
                throw .malformedCommand("unknown cluster role in an error")
            }
            return role
        }
        func narrow<T: FixedWidthInteger>(_ value: UInt64) throws(KVError) -> T {
            guard let narrowed = T(exactly: value) else { throw .malformedCommand("error field out of range") }
            return narrowed
        }
        switch reader.readByte() {
        case 1: self = .emptyKey
        case 2: self = .keyTooLarge(size: try size(), limit: try size())
        case 3: self = .valueTooLarge(size: try size(), limit: try size())
        case 4: self = .compareFailed(currentVersion: try unsigned())
        case 5: self = .notAnInteger
        case 6: self = .incrementOverflow(current: unZigZag(try unsigned()), amount: unZigZag(try unsigned()))
        case 7: self = .wrongType
        case 8: self = .collectionTooLarge(size: try size(), limit: try size())
        case 9: self = .hashValueNotInteger
        case 10: self = .collectionFailed(try text())
        case 11: self = .unknownCustomCommand(name: try text())
        case 12: self = .customCommandRejected(name: try text(), reason: try text())
        case 13: self = .alreadyApplied(index: try unsigned(), appliedIndex: try unsigned())
        case 14: self = .unsupportedEncodingVersion(try narrow(try unsigned()))
        case 15: self = .malformedCommand(try text())
        case 16: self = .malformedSnapshot(try text())
        case 17: self = .snapshotChecksumMismatch(expected: try narrow(try unsigned()), actual: try narrow(try unsigned()))
        case 18: self = .sessionExpired(session: try unsigned())
        case 19: self = .sessionSequenceStale(sequence: try unsigned(), acknowledged: try unsigned())
        case 20: self = .sessionWindowFull(limit: try size())
        case 21: self = .sessionReplyNotKept(sequence: try unsigned())
        case 22: self = .transactionAborted
        case 23: self = .noSuchKey
        case 24: self = .replyTooLarge(limit: try size())
        case 25: self = .invalidExpireTime
        case 26: self = .notAllowedInTransaction
        case 27: self = .readOnly(role: try role(), epoch: try unsigned(), primary: try text())
        case 28: self = .staleEpoch(received: try unsigned(), current: try unsigned(), primary: try text())
        case 29: self = .notStandby(role: try role(), epoch: try unsigned())
        case 30: self = .streamGap(source: try text(), cursor: try unsigned(), afterIndex: try unsigned())
        case 70: self = .clockSkew(source: try text(), aheadMillis: try unsigned(), limitMillis: try unsigned())
        case 71: self = .activeActiveDisabled
        case 72: self = .activeActiveConflict(try text())
        case 73: self = .activeActiveTopology(try text())
        case let tag?: throw .malformedCommand("unknown error tag \(tag)")
        case nil: throw .malformedCommand("truncated before the error tag")
        }
    }
}
