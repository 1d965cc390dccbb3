/// Why a backup, verification, restore or prune failed. Every case says what to do.
public enum BackupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A compression library could not be loaded (or lacks a function).
    case codecUnavailable(codec: String, detail: String)
    /// A compression library reported an error, or compressed data is malformed.
    case codecFailure(codec: String, file: String, detail: String)
    /// A stored file's checksum (or size) is not the one its manifest records.
    case checksumMismatch(file: String, expected: String, actual: String)
    /// A stored file or manifest is missing, truncated or malformed.
    case damaged(file: String, detail: String)
    /// A manifest of an unknown format version or of another cluster.
    case foreign(file: String, detail: String)
    /// The target (directory or object store) failed.
    case target(operation: String, name: String, detail: String)
    /// The data directory to back up from cannot be read, or lacks what is asked.
    case source(String)
    /// Continuous archiving lost its place: the member compacted its log past the cursor.
    case archiveGap(String)
    /// No chain of backups reaches what was asked.
    case unreachable(String)
    /// The verification's state digest differs from the one recorded at backup time.
    case digestMismatch(backup: String, atIndex: UInt64, expected: String, actual: String)
    /// Another operation holds the repository (a restore reading a chain, or a prune).
    case locked(String)
    /// Invalid arguments.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .codecUnavailable(codec, detail):
            return "the \(codec) library is not available (\(detail)); install it (Debian: apt-get install "
                + "\(Self.debianPackage(codec))) or choose another --compression"
        case let .codecFailure(codec, file, detail): return "\(file): \(codec) failed: \(detail)"
        case let .checksumMismatch(file, expected, actual):
            return "\(file): checksum mismatch: expected \(expected), actual \(actual); the file is damaged, "
                + "truncated or not this backup's"
        case let .damaged(file, detail): return "\(file): \(detail)"
        case let .foreign(file, detail): return "\(file): \(detail)"
        case let .target(operation, name, detail): return "\(operation) \(name) failed: \(detail)"
        case .source(let why): return "cannot back up: \(why)"
        case .unreachable(let why): return "no backup chain reaches the target: \(why)"
        case .archiveGap(let why): return why
        case let .digestMismatch(backup, index, expected, actual):
            return "backup \(backup): the state restored at index \(index) has digest \(actual), but \(expected) "
                + "was recorded when the backup was taken"
        case .locked(let why): return "the repository is busy: \(why)"
        case .invalidArgument(let why): return why
        }
    }

    static func debianPackage(_ codec: String) -> String {
        switch codec {
        case "zstd": return "libzstd1"
        case "lz4": return "liblz4-1"
        default: return "zlib1g"
        }
    }
}
