import AegisRaft

/// The log's metadata as of some point: what every new segment starts with, so that a
/// segment never depends on an older one for it (older ones are deleted by compaction).
struct Checkpoint {
    var hardState: RaftState
    var snapshot: SnapshotMetadata
    var compactIndex: LogIndex
    var compactTerm: Term

    init(_ log: LogState) {
        hardState = log.hardState
        snapshot = log.snapshot
        compactIndex = log.offset
        compactTerm = log.offsetTerm
    }

    func encode(into buffer: inout [UInt8]) {
        RecordFrame.appendSnapshot(snapshot, resetsLog: false, to: &buffer)
        RecordFrame.appendCompact(index: compactIndex, term: compactTerm, to: &buffer)
        RecordFrame.appendHardState(hardState, to: &buffer)
    }
}

/// Records collected from many callers, written with one `write` and one `fdatasync`.
struct Batch {
    var bytes: [UInt8] = []
    /// The first entry index in `bytes`, which names a segment started for this batch.
    var firstEntryIndex: LogIndex?
    var maxEntryIndex: LogIndex = 0
    var entryCount = 0
    /// The log's metadata and last index after this batch.
    var checkpoint: Checkpoint
    var lastIndexAfter: LogIndex
    /// After the sync: delete older segments whose entries are all at or below this index.
    var obsoleteThrough: LogIndex?
    /// After the sync: prune old snapshot files, never removing the one at this index.
    var pruneSnapshotsKeeping: LogIndex?
    /// The highest ticket the batch acknowledges; 0 while empty.
    var lastTicket: UInt64 = 0

    init(_ log: LogState, reusing buffer: [UInt8] = []) {
        bytes = buffer
        checkpoint = Checkpoint(log)
        lastIndexAfter = log.lastIndex
    }

    var isEmpty: Bool { lastTicket == 0 }

    /// Puts a batch that failed with a retryable error (no space) in front of this
    /// one, so that its records are written first, at the offset where it failed.
    mutating func prepend(_ failed: Batch) {
        bytes = failed.bytes + bytes
        firstEntryIndex = failed.firstEntryIndex ?? firstEntryIndex
        maxEntryIndex = max(maxEntryIndex, failed.maxEntryIndex)
        entryCount += failed.entryCount
        if let through = failed.obsoleteThrough { obsoleteThrough = max(obsoleteThrough ?? 0, through) }
        if let keep = failed.pruneSnapshotsKeeping {
            pruneSnapshotsKeeping = max(pruneSnapshotsKeeping ?? 0, keep)
        }
        lastTicket = max(lastTicket, failed.lastTicket)
    }
}

/// Counters of the write-ahead log's work since it was opened.
public struct WALStatistics: Sendable, Hashable {
    /// Group commits: one write and one `fdatasync` each.
    public var batches = 0
    /// `fdatasync`/`fsync` calls on segment files.
    public var dataSyncs = 0
    /// `fsync` calls on the directory (segment creation and deletion, snapshots).
    public var directorySyncs = 0
    /// Entries written.
    public var entries = 0
    /// Bytes written to segment files.
    public var bytes = 0
    /// Segments created and deleted.
    public var segmentsCreated = 0, segmentsDeleted = 0
}

/// Owns the segment files; used only by the writer thread (and by `open` before it starts).
final class SegmentWriter {
    let directory: String
    let segmentSize: Int
    /// Where the segment files live.
    let fileSystem: any FileSystem
    /// Zero-fill each segment to `segmentSize` when it is created (see `preallocate`).
    let preallocates: Bool
    private(set) var segments: [SegmentInfo]
    private var fd: Int32 = -1
    /// Bytes of records in the current segment: where the next batch is written.
    private var size: Int
    /// The current segment file's length. Invariant: `size <= fileLength` after a
    /// write, and the bytes between them are zero.
    private var fileLength: Int
    /// `true` once the current segment holds at least one batch.
    private var hasBatches: Bool
    private var checkpoint: Checkpoint
    private var lastIndex: LogIndex
    var stats = WALStatistics()

    /// Continues the last recovered segment, or creates the first one.
    init(directory: String, segmentSize: Int, preallocates: Bool, fileSystem: any FileSystem,
         recovered: RecoveredWAL?, log: LogState) throws(StorageError) {
        self.directory = directory
        self.segmentSize = segmentSize
        self.preallocates = preallocates
        self.fileSystem = fileSystem
        checkpoint = Checkpoint(log)
        lastIndex = log.lastIndex
        segments = recovered?.segments ?? []
        size = recovered?.lastSegmentSize ?? 0
        fileLength = recovered?.lastSegmentLength ?? 0
        hasBatches = true
        if let last = segments.last {
            fd = try fileSystem.open(last.path, .writeExisting)
            // A segment written without preallocation, or cut back by recovery.
            if try preallocate(path: last.path) { try fileSystem.dataSync(fd, path: last.path) }
        } else {
            try startSegment(firstIndex: log.lastIndex + 1)
            try fileSystem.dataSync(fd, path: currentPath)
            try fileSystem.syncDirectory(directory)
        }
    }

    private var currentPath: String { segments.last?.path ?? directory }

    func close() {
        if fd >= 0 { fileSystem.close(fd) }
        fd = -1
    }

    /// Writes a batch, makes it durable, then carries out its deletions.
    ///
    /// Throws `StorageError.noSpace` when the file system is full, before any byte of
    /// the batch was written (the space it needs past the end of the file is reserved
    /// first); the writer is then unchanged, and writing the same batch again later is
    /// safe. Any other error is fatal.
    func write(_ batch: Batch) throws(StorageError) {
        var created = false
        if hasBatches && size + batch.bytes.count > segmentSize {
            try trimPreallocation()
            try startSegment(firstIndex: batch.firstEntryIndex ?? lastIndex + 1, reserving: batch.bytes.count)
            created = true
        } else {
            try reserve(upTo: size + batch.bytes.count)
        }
        do {
            try fileSystem.writeAll(fd, batch.bytes, at: size, path: currentPath)
        } catch let StorageError.io(_, _, code) where FileIO.isNoSpace(code) {
            // Only on file systems that allocate on overwrite (copy-on-write): the bytes
            // written are a prefix of what the retry writes at the same offset.
            fileLength = max(fileLength, (try? fileSystem.length(fd, path: currentPath)) ?? fileLength)
            throw fileSystem.noSpace(fd, path: currentPath, needed: batch.bytes.count)
        }
        try fileSystem.dataSync(fd, path: currentPath)
        if created {
            try fileSystem.syncDirectory(directory)
            stats.directorySyncs += 1
        }
        size += batch.bytes.count
        fileLength = max(fileLength, size)
        hasBatches = true
        segments[segments.count - 1].maxEntryIndex = max(segments[segments.count - 1].maxEntryIndex, batch.maxEntryIndex)
        checkpoint = batch.checkpoint
        lastIndex = batch.lastIndexAfter
        stats.batches += 1
        stats.dataSyncs += 1
        stats.entries += batch.entryCount
        stats.bytes += batch.bytes.count
        if let through = batch.obsoleteThrough { try deleteSegments(through: through) }
        if let keep = batch.pruneSnapshotsKeeping { try pruneSnapshots(keeping: keep) }
    }

    var retainedSnapshots = 2

    private func pruneSnapshots(keeping index: LogIndex) throws(StorageError) {
        try SnapshotFile.prune(directory: directory, retain: retainedSnapshots, keep: index, fileSystem: fileSystem)
    }

    /// Creates the next segment and writes its header and the current checkpoint (not
    /// yet synced: the batch that follows is synced with it), with room for `reserving`
    /// more bytes. On a full file system the new file is removed again and
    /// `StorageError.noSpace` thrown; the writer is unchanged.
    private func startSegment(firstIndex: LogIndex, reserving: Int = 0) throws(StorageError) {
        let name = SegmentName(sequence: (segments.last?.name.sequence ?? 0) + 1, firstIndex: firstIndex)
        let path = directory + "/" + name.fileName
        let newFD = try fileSystem.open(path, .createExclusive)
        var header: [UInt8] = []
        RecordFrame.appendSegmentHeader(sequence: name.sequence, firstIndex: firstIndex, to: &header)
        checkpoint.encode(into: &header)
        let length: Int
        do {
            try fileSystem.reserveZeros(newFD, from: 0, to: header.count + reserving, path: path)
            try fileSystem.writeAll(newFD, header, at: 0, path: path)
            let target = preallocationTarget(newFD, atLeast: header.count + reserving)
            length = try zeroFill(newFD, from: header.count, to: target, path: path)
        } catch {
            // Never synced nor acknowledged: a later attempt creates it afresh.
            fileSystem.close(newFD)
            try? fileSystem.remove(path)
            throw error
        }
        close()
        fd = newFD
        segments.append(SegmentInfo(name: name, path: path, maxEntryIndex: 0))
        size = header.count
        fileLength = max(length, header.count + reserving)
        hasBatches = false
        stats.segmentsCreated += 1
        stats.bytes += header.count
    }

    /// Zero-fills the current segment up to its preallocation target (not synced);
    /// `true` if it wrote anything.
    ///
    /// Why: on ext4 and XFS, an `fdatasync` after a write that extends the file must
    /// also write the inode (its size, new extents) — a second synchronous write.
    /// Writing into bytes that already exist and were synced makes it a data-only flush.
    /// `fallocate` is not enough: it leaves unwritten extents whose conversion on the
    /// first write is again a metadata update.
    private func preallocate(path: String) throws(StorageError) -> Bool {
        let target = preallocationTarget(fd, atLeast: fileLength)
        guard target > fileLength else { return false }
        fileLength = try zeroFill(fd, from: fileLength, to: target, path: path)
        return true
    }

    /// How far a segment is zero-filled: `segmentSize`, but at most a quarter of the
    /// space still free on its file system (so that a small disk keeps room for
    /// snapshots and the next segment), and never less than `needed`. Without
    /// preallocation, `needed`.
    private func preallocationTarget(_ fd: Int32, atLeast needed: Int) -> Int {
        guard preallocates else { return needed }
        let spare = (fileSystem.availableBytes(fd) ?? .max) / 4
        let target = min(segmentSize, spare) / 4096 * 4096
        return max(needed, target)
    }

    /// Writes zeros over `[start, end)` of `fd` (not synced) and returns the file's new
    /// length. Best effort: on a full file system it stops early (the file then ends in
    /// however many zeros were written) instead of failing.
    private func zeroFill(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError) -> Int {
        guard end > start else { return start }
        do {
            try fileSystem.writeZeros(fd, from: start, to: end, path: path)
            return end
        } catch let StorageError.io(_, _, code) where FileIO.isNoSpace(code) {
            return try fileSystem.length(fd, path: path)
        }
    }

    /// Makes sure the current segment has room up to `end` before records are written
    /// there: past its zero-filled end, the space is allocated first (`noSpace` if the
    /// file system is full, with nothing written but zeros).
    private func reserve(upTo end: Int) throws(StorageError) {
        guard end > fileLength else { return }
        do {
            try fileSystem.reserveZeros(fd, from: fileLength, to: end, path: currentPath)
            fileLength = end
        } catch {
            if case .noSpace = error {
                fileLength = max(fileLength, (try? fileSystem.length(fd, path: currentPath)) ?? fileLength)
            }
            throw error
        }
    }

    /// Before a segment is closed for good: cuts its unused zero-filled end and syncs,
    /// so that only the last segment ever ends in preallocated space (recovery treats
    /// a zeroed end of any earlier segment as lost data).
    private func trimPreallocation() throws(StorageError) {
        guard fileLength > size else { return }
        try fileSystem.truncate(fd, to: size, path: currentPath)
        try fileSystem.dataSync(fd, path: currentPath)
        fileLength = size
    }

    /// Deletes the oldest segments (never the current one) whose entries are all at or
    /// below `index`, oldest first, so that what remains is always a suffix.
    private func deleteSegments(through index: LogIndex) throws(StorageError) {
        var removed = 0
        while segments.count > 1, segments[0].maxEntryIndex <= index {
            try fileSystem.remove(segments[0].path)
            segments.removeFirst()
            removed += 1
        }
        if removed > 0 {
            try fileSystem.syncDirectory(directory)
            stats.directorySyncs += 1
            stats.segmentsDeleted += removed
        }
    }
}
