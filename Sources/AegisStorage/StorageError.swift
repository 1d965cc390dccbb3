public import AegisRaft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the durable storage. `io` and `stopped` are fatal for the node: after a
/// failed write or fsync the page cache can no longer be trusted, so the storage
/// refuses every further operation. `corruption` means data that was (or may have been)
/// acknowledged is damaged: the node must not start as a voter until it is repaired.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A system call failed. `operation` is the call (`fdatasync`, `write`, …).
    case io(operation: String, path: String, errno: Int32)
    /// Synced data is damaged; see the report for the file, offset and index range.
    case corruption(CorruptionReport)
    /// The storage stopped after an earlier fatal error (`reason`); restart the node.
    case stopped(reason: String)
    /// A caller broke the storage contract (for example a non-contiguous append).
    case invalidArgument(String)
    /// A file has a format or version this build does not understand.
    case unsupportedFormat(path: String, detail: String)

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
        }
    }

    /// The error as the Raft core's storage error, for the `RaftStorage` protocols.
    var asRaftError: RaftError { .storage(description) }
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
