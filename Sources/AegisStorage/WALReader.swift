public import AegisRaft

/// Reads the write-ahead log of a directory sequentially, record by record, oldest
/// first: the history that point-in-time recovery and incremental backups replay.
///
/// It reads the files as they are and changes nothing. A torn tail at the end of the
/// last segment ends the iteration quietly (it was never acknowledged); any other damage
/// throws `StorageError.corruption`. Entries may repeat an index when a conflicting
/// suffix was overwritten: the later record wins.
public struct WALReader {
    /// One record and where it is.
    public struct Item: Sendable, Hashable {
        /// The record.
        public var record: WALRecord
        /// The segment file.
        public var file: String
        /// The byte offset of the record's frame in `file`.
        public var offset: Int
    }

    private let directory: String
    private var segments: [SegmentName]
    private var buffered: [Item] = []
    private var position = 0
    private var lastEntryIndex: LogIndex = 0

    /// Lists the segments of `directory`.
    public init(directory: String) throws(StorageError) {
        self.directory = directory
        segments = try FileIO.list(directory).compactMap(SegmentName.init(fileName:)).sorted()
    }

    /// The next record, or `nil` at the end of the log.
    public mutating func next() throws(StorageError) -> Item? {
        while position == buffered.count {
            guard let name = segments.first else { return nil }
            segments.removeFirst()
            let path = directory + "/" + name.fileName
            let scan = SegmentScanner.scan(try FileIO.readAll(path), isLastSegment: segments.isEmpty)
            if let damage = scan.damage, !damage.isTornTail {
                throw .corruption(CorruptionReport(file: path, offset: damage.offset, firstLostIndex: lastEntryIndex + 1,
                                                   lastLostIndex: damage.nextValidIndex.map { $0 - 1 },
                                                   reason: damage.reason))
            }
            buffered = scan.records.map { Item(record: $0.record, file: path, offset: $0.offset) }
            position = 0
        }
        defer { position += 1 }
        if case .entry(let entry) = buffered[position].record { lastEntryIndex = entry.index }
        return buffered[position]
    }

    /// Every entry record with `from <= index`, in log order, the later record winning
    /// where a suffix was overwritten; stops after `through` if given.
    public static func entries(directory: String, from: LogIndex = 0,
                               through: LogIndex? = nil) throws(StorageError) -> [LogEntry] {
        var reader = try WALReader(directory: directory)
        var result: [LogEntry] = []
        while let item = try reader.next() {
            guard case .entry(let entry) = item.record, entry.index >= from else {
                if case .snapshot(_, let resets) = item.record, resets { result.removeAll() }
                continue
            }
            if let through, entry.index > through { continue }
            while let last = result.last, last.index >= entry.index { result.removeLast() }
            result.append(entry)
        }
        return result
    }
}
