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
    let faults: FaultInjector?
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
    init(directory: String, segmentSize: Int, preallocates: Bool, faults: FaultInjector?,
         recovered: RecoveredWAL?, log: LogState) throws(StorageError) {
        self.directory = directory
        self.segmentSize = segmentSize
        self.preallocates = preallocates
        self.faults = faults
        checkpoint = Checkpoint(log)
        lastIndex = log.lastIndex
        segments = recovered?.segments ?? []
        size = recovered?.lastSegmentSize ?? 0
        fileLength = recovered?.lastSegmentLength ?? 0
        hasBatches = true
        if let last = segments.last {
            fd = try FileIO.open(last.path, O_WRONLY_FLAG, faults)
            // A segment written without preallocation, or cut back by recovery.
            if try preallocate(path: last.path) { try FileIO.dataSync(fd, path: last.path, faults: faults) }
        } else {
            try startSegment(firstIndex: log.lastIndex + 1)
            try FileIO.dataSync(fd, path: currentPath, faults: faults)
            try FileIO.syncDirectory(directory, faults: faults)
        }
    }

    private var currentPath: String { segments.last?.path ?? directory }

    func close() {
        if fd >= 0 { _ = closeFile(fd) }
        fd = -1
    }

    /// Writes a batch, makes it durable, then carries out its deletions.
    func write(_ batch: Batch) throws(StorageError) {
        var created = false
        if hasBatches && size + batch.bytes.count > segmentSize {
            try trimPreallocation()
            try startSegment(firstIndex: batch.firstEntryIndex ?? lastIndex + 1)
            created = true
        }
        try FileIO.writeAll(fd, batch.bytes, at: size, path: currentPath, faults: faults)
        try FileIO.dataSync(fd, path: currentPath, faults: faults)
        if created {
            try FileIO.syncDirectory(directory, faults: faults)
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
        try SnapshotFile.prune(directory: directory, retain: retainedSnapshots, keep: index, faults: faults)
    }

    /// Creates the next segment and writes its header and the current checkpoint (not
    /// yet synced: the batch that follows is synced with it).
    private func startSegment(firstIndex: LogIndex) throws(StorageError) {
        let name = SegmentName(sequence: (segments.last?.name.sequence ?? 0) + 1, firstIndex: firstIndex)
        let path = directory + "/" + name.fileName
        let newFD = try FileIO.open(path, O_CREAT_EXCL_WRONLY_FLAGS, faults)
        var header: [UInt8] = []
        RecordFrame.appendSegmentHeader(sequence: name.sequence, firstIndex: firstIndex, to: &header)
        checkpoint.encode(into: &header)
        do {
            try FileIO.writeAll(newFD, header, at: 0, path: path, faults: faults)
            if preallocates && segmentSize > header.count {
                try FileIO.writeZeros(newFD, from: header.count, to: segmentSize, path: path, faults: faults)
            }
        } catch {
            _ = closeFile(newFD)
            throw error
        }
        close()
        fd = newFD
        segments.append(SegmentInfo(name: name, path: path, maxEntryIndex: 0))
        size = header.count
        fileLength = preallocates ? max(segmentSize, header.count) : header.count
        hasBatches = false
        stats.segmentsCreated += 1
        stats.bytes += header.count
    }

    /// Zero-fills the current segment up to `segmentSize` (not synced); `true` if it
    /// wrote anything.
    ///
    /// Why: on ext4 and XFS, an `fdatasync` after a write that extends the file must
    /// also write the inode (its size, new extents) — a second synchronous write.
    /// Writing into bytes that already exist and were synced makes it a data-only flush.
    /// `fallocate` is not enough: it leaves unwritten extents whose conversion on the
    /// first write is again a metadata update.
    private func preallocate(path: String) throws(StorageError) -> Bool {
        guard preallocates, fileLength < segmentSize else { return false }
        try FileIO.writeZeros(fd, from: fileLength, to: segmentSize, path: path, faults: faults)
        fileLength = segmentSize
        return true
    }

    /// Before a segment is closed for good: cuts its unused zero-filled end and syncs,
    /// so that only the last segment ever ends in preallocated space (recovery treats
    /// a zeroed end of any earlier segment as lost data).
    private func trimPreallocation() throws(StorageError) {
        guard fileLength > size else { return }
        try FileIO.truncate(fd, to: size, path: currentPath, faults: faults)
        try FileIO.dataSync(fd, path: currentPath, faults: faults)
        fileLength = size
    }

    /// Deletes the oldest segments (never the current one) whose entries are all at or
    /// below `index`, oldest first, so that what remains is always a suffix.
    private func deleteSegments(through index: LogIndex) throws(StorageError) {
        var removed = 0
        while segments.count > 1, segments[0].maxEntryIndex <= index {
            try FileIO.remove(segments[0].path, faults: faults)
            segments.removeFirst()
            removed += 1
        }
        if removed > 0 {
            try FileIO.syncDirectory(directory, faults: faults)
            stats.directorySyncs += 1
            stats.segmentsDeleted += removed
        }
    }
}
