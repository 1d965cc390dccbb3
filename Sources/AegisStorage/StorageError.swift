public import AegisRaft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the durable storage.
///
/// ## Which errors stop the node and which can be retried
///
/// - **Retryable** — ``noSpace``: the file system (or the user's quota) is full.
///   Nothing of the failed write is acknowledged or half-written: the space a write needs
///   is allocated before its first byte is written, so the file gains at most zeros past
///   its last record (free space to recovery). The storage keeps the records of the
///   failed batch in memory and writes them, first, with the next attempt. The storage stays open and its reads keep working. The caller must not treat
///   the write as durable (for a `Ready`: do not send, apply or advance), should stop
///   accepting new client writes, and retry the same write later (calling
///   `save`/`persist` again with the same hard state and entries, or `sync()`); the
///   retry succeeds once space returns (for example after old segments or snapshot files
///   were deleted, or the disk was grown). Snapshot writes (`createSnapshot`,
///   `applySnapshot`) throw it too, unwrapped, and can be retried the same way.
/// - **Caller error** — ``invalidArgument``: the call broke the storage contract
///   (for example a non-contiguous append); nothing was written and the storage stays
///   usable, but retrying the same call fails the same way.
/// - **Fail-stop** — ``io`` and ``stopped``: after a failed write or fsync the page
///   cache can no longer be trusted, so the storage refuses every further operation;
///   the node must stop and restart (recovery then decides what survived).
/// - **At open only** — ``corruption`` (synced data is damaged: the node must not start
///   as a voter until it is repaired) and ``unsupportedFormat``.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A system call failed. `operation` is the call (`fdatasync`, `write`, …). Fatal.
    case io(operation: String, path: String, errno: Int32)
    /// Synced data is damaged; see the report for the file, offset and index range.
    case corruption(CorruptionReport)
    /// The storage stopped after an earlier fatal error (`reason`); restart the node.
    case stopped(reason: String)
    /// A caller broke the storage contract (for example a non-contiguous append).
    case invalidArgument(String)
    /// A file has a format or version this build does not understand.
    case unsupportedFormat(path: String, detail: String)
    /// The file system holding `path` has no room for `needed` more bytes (`available`
    /// were free when the write failed; `ENOSPC` or `EDQUOT`). **Retryable**: nothing was
    /// acknowledged or half-written and the storage stays open; write again once space
    /// returns.
    case noSpace(path: String, needed: Int, available: Int)

    /// Whether the storage is still usable after this error and the same write may
    /// succeed later (only ``noSpace``).
    public var isRetryable: Bool {
        if case .noSpace = self { return true }
        return false
    }

    /// Whether this error stopped the storage for good (``io`` and ``stopped``): the node
    /// must restart.
    public var isFatal: Bool {
        switch self {
        case .io, .stopped: return true
        case .corruption, .invalidArgument, .unsupportedFormat, .noSpace: return false
        }
    }

    public var description: String {
        switch self {
        case let .io(operation, path, code):
            return "\(operation) failed on \(path): \(String(cString: strerror(code))) (errno \(code)); "
                + "the storage has stopped and the node must restart"
        case .corruption(let report): return report.description
        case .stopped(let reason):
            return "storage stopped after a fatal error (\(reason)); restart the node"
        case .invalidArgument(let why): return "invalid storage call: \(why)"
        case let .unsupportedFormat(path, detail): return "unsupported file format in \(path): \(detail)"
        case let .noSpace(path, needed, available):
            return "no space left for \(needed) bytes in \(path) (\(available) bytes available); nothing was "
                + "written or acknowledged: free space and retry the write"
        }
    }

    /// The error as the Raft core's storage error, for the `RaftStorage` protocols.
    var asRaftError: RaftError { .storage(description) }

    /// What the untyped `RaftStorage` methods throw: `noSpace` as it is (so that a caller
    /// can tell it is retryable), anything else as `RaftError.storage`.
    var raftFacing: any Error { isRetryable ? self : asRaftError }
}

/// Where synced data was found damaged and which log indexes it loses.
public struct CorruptionReport: Sendable, Hashable, CustomStringConvertible {
    /// The damaged file.
    public var file: String
    /// The byte offset in `file` of the first damaged record.
    public var offset: Int
    /// The first log index that cannot be recovered.
    public var firstLostIndex: LogIndex
    /// The last log index that cannot be recovered, or `nil` when the damage may reach
    /// the end of the log (nothing valid was found after it).
    public var lastLostIndex: LogIndex?
    /// What is wrong, in words.
    public var reason: String

    /// Creates a report.
    public init(file: String, offset: Int, firstLostIndex: LogIndex, lastLostIndex: LogIndex?, reason: String) {
        self.file = file
        self.offset = offset
        self.firstLostIndex = firstLostIndex
        self.lastLostIndex = lastLostIndex
        self.reason = reason
    }

    /// The lost indexes in words, for example `"101...140"` or `"101 and later"`.
    public var lostRange: String {
        guard let last = lastLostIndex else { return "\(firstLostIndex) and later" }
        return last < firstLostIndex ? "none (metadata only)" : "\(firstLostIndex)...\(last)"
    }

    public var description: String {
        "corrupted write-ahead log: \(reason) in \(file) at offset \(offset); log indexes \(lostRange) "
            + "cannot be recovered. The node must not start as a voter: repair it by restoring "
            + "this node from a healthy replica (or a backup) instead of truncating the log"
    }
}
