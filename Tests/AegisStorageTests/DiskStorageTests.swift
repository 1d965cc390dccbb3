import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

private func entry(_ index: LogIndex, term: Term = 1) -> LogEntry {
    LogEntry(index: index, term: term, data: Array("entry-\(index)".utf8), timestamp: 5_000 + index)
}

@Test func test_diskStorage_groupCommitSharesOneSyncAmongConcurrentAppenders() throws {
    let dir = TemporaryDirectory()
    var options = DiskStorageOptions()
    // A slow disk (2 ms per fdatasync), so that appenders pile up behind each sync.
    options.faults = { operation, _ in
        if operation == "fdatasync" { usleep(2_000) }
        return nil
    }
    let storage = try DiskStorage(directory: dir.path, options: options)
    let lock = NSLock()
    nonisolated(unsafe) var next: LogIndex = 1
    let threads = 16, perThread = 40
    let done = DispatchGroup()
    for _ in 0..<threads {
        done.enter()
        Thread {
            for _ in 0..<perThread {
                lock.lock()
                let ticket = try? storage.submit(entries: [entry(next)])
                next += 1
                lock.unlock()
                if let ticket { try? storage.waitUntilDurable(ticket) }
            }
            done.leave()
        }.start()
    }
    done.wait()
    let stats = storage.statistics
    #expect(stats.entries == threads * perThread)
    #expect(stats.dataSyncs * 4 < threads * perThread, "\(stats.dataSyncs) syncs for \(stats.entries) entries")
    storage.close()
    let reopened = try DiskStorage(directory: dir.path)
    #expect(try reopened.lastIndex() == LogIndex(threads * perThread))
    #expect(try reopened.entries(from: 1, to: 641, maxBytes: .max) == (1...640).map { entry($0) })
}

@Test func test_diskStorage_saveAsyncResumesOnceDurable() async throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path)
    try await storage.saveAsync(hardState: RaftState(term: 2, votedFor: "n2", commitIndex: 0), entries: [entry(1), entry(2)])
    try await storage.saveAsync(entries: [])
    #expect(storage.statistics.entries == 2)
    storage.close()
    let reopened = try DiskStorage(directory: dir.path)
    #expect(try reopened.initialState().state == RaftState(term: 2, votedFor: "n2", commitIndex: 0))
    #expect(try reopened.lastIndex() == 2)
}

@Test func test_diskStorage_stopsAfterAnFsyncError() throws {
    let dir = TemporaryDirectory()
    var options = DiskStorageOptions()
    let failing = LockedFlag()
    options.faults = { operation, _ in operation == "fdatasync" && failing.value ? EIO : nil }
    let storage = try DiskStorage(directory: dir.path, options: options)
    try storage.append([entry(1)])
    failing.value = true
    #expect(throws: RaftError.self) { try storage.append([entry(2)]) }
    guard case .io(let operation, _, let code)? = storage.failure else {
        Issue.record("expected an I/O failure, got \(String(describing: storage.failure))"); return
    }
    #expect(operation == "fdatasync" && code == EIO)
    failing.value = false
    #expect(throws: RaftError.self) { try storage.append([entry(2)]) }
    #expect(throws: RaftError.self) { _ = try storage.lastIndex() }
    #expect(throws: StorageError.self) { try storage.save(hardState: nil, entries: [entry(2)]) }
    storage.close()
    // Entry 2 was never acknowledged; entry 1 was.
    let reopened = try DiskStorage(directory: dir.path)
    #expect(try reopened.entries(from: 1, to: 2, maxBytes: .max) == [entry(1)])
}

@Test func test_diskStorage_compactionDeletesWholeSegmentsAndSnapshotsArePruned() throws {
    let dir = TemporaryDirectory()
    let options = DiskStorageOptions(segmentSize: 4096)
    let storage = try DiskStorage(directory: dir.path, options: options)
    for i in 1...400 { try storage.append([entry(LogIndex(i))]) }
    let before = try FileIO.list(dir.path).filter { $0.hasSuffix(".wal") }.count
    for (k, at) in [100, 200, 300, 350].enumerated() {
        try storage.createSnapshot(at: LogIndex(at), conf: ConfState(voters: ["a"]), data: [UInt8(k)])
    }
    try storage.compact(upTo: 350)
    let after = try FileIO.list(dir.path).filter { $0.hasSuffix(".wal") }.count
    let snapshots = try FileIO.list(dir.path).filter { $0.hasSuffix(".snap") }.sorted()
    #expect(before >= 4 && after <= 2, "\(before) segments before, \(after) after")
    #expect(snapshots == [SnapshotFile.fileName(index: 300, term: 1), SnapshotFile.fileName(index: 350, term: 1)])
    #expect(storage.statistics.segmentsDeleted == before - after)
    storage.close()
    let reopened = try DiskStorage(directory: dir.path, options: options)
    #expect(try reopened.firstIndex() == 351 && reopened.lastIndex() == 400)
    #expect(try reopened.snapshot().data == [3])
    #expect(try reopened.entries(from: 351, to: 401, maxBytes: .max) == (351...400).map { entry($0) })
}

/// A streamed snapshot is written chunk by chunk; its bytes are not kept in memory but
/// read back from the file; chunks that do not add up to the announced length leave no
/// file and do not stop the storage.
@Test func test_diskStorage_streamedSnapshotIsReadFromItsFileAndALengthMismatchWritesNothing() throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    for i in 1...50 { try storage.append([entry(LogIndex(i))]) }
    let chunks: [[UInt8]] = [[1, 2, 3], [], [4, 5], [6]]
    for announced in [5, 7] {
        #expect(throws: RaftError.self) {
            try storage.createSnapshot(at: 20, conf: ConfState(voters: ["a"]), byteCount: announced, chunks: chunks)
        }
    }
    #expect(try FileIO.list(dir.path).filter { $0.contains(".snap") }.isEmpty)
    let metadata = try storage.createSnapshot(at: 20, conf: ConfState(voters: ["a"]), byteCount: 6, chunks: chunks)
    #expect(metadata.index == 20 && metadata.term == 1)
    #expect(try storage.snapshotMetadata() == metadata)
    #expect(try storage.snapshot() == Snapshot(metadata: metadata, data: [1, 2, 3, 4, 5, 6]))
    try storage.append([entry(51)])  // the storage still works
    storage.close()

    // Reopened: the data read at open is handed out once, later calls read the file.
    let reopened = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    #expect(try reopened.snapshot().data == [1, 2, 3, 4, 5, 6])
    #expect(try reopened.snapshot().data == [1, 2, 3, 4, 5, 6])
    // A snapshot file damaged after open is found when it is read, and stops the storage.
    let path = dir.path + "/" + SnapshotFile.fileName(index: 20, term: 1)
    var bytes = try FileIO.readAll(path)
    bytes[bytes.count - 6] ^= 0x40
    try PosixFileSystem().writeDurably(bytes, to: path, directory: dir.path)
    #expect(throws: RaftError.self) { try reopened.snapshot() }
    #expect(reopened.failure != nil)
}

/// A leader's snapshot for a transfer is read off the calling thread: the first ask
/// starts the read and says "temporarily unavailable", a later one gets the bytes; a
/// newer snapshot makes an older read irrelevant.
@Test func test_diskStorage_snapshotForTransferIsReadInTheBackground() throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    for i in 1...50 { try storage.append([entry(LogIndex(i))]) }
    try storage.createSnapshot(at: 20, conf: ConfState(voters: ["a"]), data: [1, 2, 3])
    func fetch() throws -> (Snapshot, attempts: Int) {
        for attempt in 1...500 {
            do { return (try storage.snapshotForTransfer(), attempt) } catch RaftError.snapshotTemporarilyUnavailable {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        throw RaftError.unavailable
    }
    let (first, attempts) = try fetch()
    #expect(first.data == [1, 2, 3] && first.metadata.index == 20)
    #expect(attempts > 1)
    #expect(throws: RaftError.snapshotTemporarilyUnavailable) { try storage.snapshotForTransfer() }
    try storage.createSnapshot(at: 30, conf: ConfState(voters: ["a"]), data: [4, 5])
    let (second, _) = try fetch()
    #expect(second.data == [4, 5] && second.metadata.index == 30)
}

/// On open the newest snapshot file is read while the log is recovered; the log says
/// which snapshot counts. A newer file the log never recorded (a crash between writing
/// it and recording it), even a damaged one, changes nothing.
@Test func test_diskStorage_openUsesTheRecordedSnapshotNotTheNewestFile() throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    for i in 1...50 { try storage.append([entry(LogIndex(i))]) }
    try storage.createSnapshot(at: 20, conf: ConfState(voters: ["a"]), data: [1, 2, 3])
    storage.close()
    for damaged in [false, true] {
        let stray = Snapshot(metadata: SnapshotMetadata(index: 40, term: 1, confState: ConfState(voters: ["a"])), data: [9, 9])
        try SnapshotFile.write(stray, directory: dir.path, fileSystem: PosixFileSystem())
        if damaged {
            let path = dir.path + "/" + SnapshotFile.fileName(index: 40, term: 1)
            var bytes = try FileIO.readAll(path)
            bytes[bytes.count - 1] ^= 1
            try PosixFileSystem().writeDurably(bytes, to: path, directory: dir.path)
        }
        let reopened = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
        #expect(try reopened.snapshotMetadata().index == 20)
        #expect(try reopened.snapshot().data == [1, 2, 3])
        #expect(try reopened.lastIndex() == 50)
        reopened.close()
    }
}

/// The snapshot preparer runs on the snapshot read at open; its result is handed out
/// once, and only for the snapshot the log names (not for a newer stray file).
@Test func test_diskStorage_preparesTheRecordedSnapshotWhileOpening() throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    for i in 1...50 { try storage.append([entry(LogIndex(i))]) }
    try storage.createSnapshot(at: 20, conf: ConfState(voters: ["a"]), data: [1, 2, 3])
    storage.close()
    var options = DiskStorageOptions(segmentSize: 4096)
    options.snapshotPreparer = { metadata in CollectingPreparation(index: metadata.index) }
    let reopened = try DiskStorage(directory: dir.path, options: options)
    #expect(reopened.takePreparedSnapshot() as? String == "prepared 20 [1, 2, 3]")
    #expect(reopened.takePreparedSnapshot() == nil)
    // Streamed to the preparer, the data was not kept: `snapshot()` reads the file again.
    #expect(try reopened.snapshot().data == [1, 2, 3])
    reopened.close()
    // A newer file the log never recorded is read first, but is not the one that counts.
    let stray = Snapshot(metadata: SnapshotMetadata(index: 40, term: 1, confState: ConfState(voters: ["a"])), data: [9])
    try SnapshotFile.write(stray, directory: dir.path, fileSystem: PosixFileSystem())
    let again = try DiskStorage(directory: dir.path, options: options)
    #expect(again.takePreparedSnapshot() == nil)
    #expect(try again.snapshot().data == [1, 2, 3])
    again.close()
}

/// Without a writer thread a caller writes the pending batch itself; the node loop and a
/// snapshot on its own thread may both do so at once. Batches must still be written one
/// at a time and in order (two writers at once interleaved or reordered them).
@Test func test_diskStorage_inlineWritersOnTwoThreadsWriteBatchesInOrder() throws {
    let dir = TemporaryDirectory()
    var options = DiskStorageOptions(segmentSize: 64 << 10)
    options.writerThread = false
    options.preallocateSegments = false
    let storage = try DiskStorage(directory: dir.path, options: options)
    let stop = ManagedAtomicFlag()
    let syncer = Thread {
        while !stop.isSet { try? storage.sync() }
    }
    syncer.start()
    for i in 1...2_000 {
        try storage.save(hardState: nil, entries: [entry(LogIndex(i))], sync: i % 3 == 0)
    }
    try storage.sync()
    stop.set()
    storage.close()
    let reopened = try DiskStorage(directory: dir.path, options: options)
    #expect(try reopened.lastIndex() == 2_000)
    #expect(try reopened.entries(from: 1, to: 2_001, maxBytes: .max) == (1...2_000).map { entry($0) })
}

/// A flag one thread sets and another polls.
private final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

@Test func test_walReader_returnsRecordsInOrderWithTimestamps() throws {
    let dir = TemporaryDirectory()
    let storage = try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 4096))
    for i in 1...100 { try storage.append([entry(LogIndex(i))]) }
    try storage.append([entry(90, term: 2), entry(91, term: 2)])
    try storage.setHardState(RaftState(term: 2, votedFor: nil, commitIndex: 91))
    storage.close()
    let entries = try WALReader.entries(directory: dir.path)
    #expect(entries.map(\.index) == Array(1...91))
    #expect(entries.last == entry(91, term: 2))
    #expect(entries.allSatisfy { $0.timestamp == 5_000 + $0.index })
    var reader = try WALReader(directory: dir.path)
    var kinds: [String] = []
    while let item = try reader.next() {
        if case .segmentHeader = item.record { kinds.append("header") }
        if case .hardState(let s) = item.record, s.commitIndex == 91 { kinds.append("hs") }
    }
    #expect(kinds.first == "header" && kinds.last == "hs")
}

@Test func test_diskStorage_refusesATooSmallSegmentSize() {
    let dir = TemporaryDirectory()
    #expect(throws: StorageError.self) { try DiskStorage(directory: dir.path, options: DiskStorageOptions(segmentSize: 100)) }
}

/// A thread-safe Boolean for fault injection.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
