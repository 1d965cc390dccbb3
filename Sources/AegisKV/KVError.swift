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
        }
    }
}

private func hex32(_ value: UInt32) -> String {
    hexString([UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16),
               UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
}
