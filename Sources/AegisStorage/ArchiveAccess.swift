public import AegisRaft

/// Read-only access to a data directory and the WAL's entry framing for backups and
/// archiving (`AegisBackup`): the same record format and checksum as the log, in one place.
public enum ArchiveAccess {
    /// Appends `entry` to `buffer` as a framed WAL entry record (length, CRC-32C, type,
    /// payload), exactly as the log writes it.
    public static func appendFramedEntry(_ entry: LogEntry, to buffer: inout [UInt8]) {
        RecordFrame.appendEntry(entry, to: &buffer)
    }

    /// Decodes a byte sequence of framed entry records written by
    /// `appendFramedEntry(_:to:)`.
    ///
    /// - Parameter name: the file the bytes came from, named in errors.
    /// - Throws: `StorageError.corruption` for an incomplete, damaged or non-entry record.
    public static func decodeFramedEntries(_ bytes: [UInt8], name: String) throws(StorageError) -> [LogEntry] {
        let (entries, consumed) = try decodeFramedPrefix(bytes, name: name)
        if consumed < bytes.count {
            throw .corruption(CorruptionReport(file: name, offset: consumed, firstLostIndex: (entries.last?.index ?? 0) + 1,
                                               lastLostIndex: nil, reason: "the file ends inside a record (truncated)"))
        }
        return entries
    }

    /// Decodes the complete framed entry records at the start of `bytes` (a stream read
    /// in pieces); returns them and the bytes they take. An incomplete last record is
    /// left for the next call.
    public static func decodeFramedPrefix(_ bytes: [UInt8], name: String) throws(StorageError)
        -> (entries: [LogEntry], consumed: Int) {
        var entries: [LogEntry] = []
        var offset = 0
        let failure: (Int, String) -> StorageError = { offset, why in
            .corruption(CorruptionReport(file: name, offset: offset, firstLostIndex: (entries.last?.index ?? 0) + 1,
                                         lastLostIndex: nil, reason: why))
        }
        while offset < bytes.count {
            let decoded = bytes.withUnsafeBytes { RecordFrame.decode($0, at: offset) }
            switch decoded {
            case let .record(.entry(entry), end):
                entries.append(entry)
                offset = end
            case .record:
                throw failure(offset, "a record that is not a log entry")
            case .incomplete:
                return (entries, offset)
            case .zeroHeader:
                throw failure(offset, "zeroed bytes where a record should be")
            case .checksumMismatch:
                throw failure(offset, "record checksum mismatch")
            case .malformed(let why):
                throw failure(offset, "malformed record (\(why))")
            }
        }
        return (entries, offset)
    }

    /// The snapshot stored in `directory` at `index`/`term` (as named by a
    /// `WALRecord.snapshot` record), read and verified without changing anything.
    public static func readSnapshot(directory: String, index: LogIndex, term: Term) throws(StorageError) -> Snapshot {
        try SnapshotFile.read(directory: directory, index: index, term: term)
    }
}
