import AegisRaft
import NIOConcurrencyHelpers
import Testing
@testable import AegisStorage

/// Records the write-back hints and data syncs a writer makes, passing every call on
/// to a simulated file system.
private final class RecordingFileSystem: FileSystem {
    let inner = SimulatedFileSystem()
    struct Calls {
        var writeback: [Range<Int>] = []
        /// `(synced up to, bytes written when it was called)`.
        var syncs: [Int] = []
        var written = 0
        /// The most bytes written and not yet covered by a sync.
        var mostUnsynced = 0
    }
    let calls = NIOLockedValueBox(Calls())

    func open(_ path: String, _ mode: FileOpenMode) throws(StorageError) -> Int32 { try inner.open(path, mode) }
    func close(_ fd: Int32) { inner.close(fd) }
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(StorageError) {
        try inner.write(fd, bytes, at: offset, path: path)
        calls.withLockedValue { calls in
            calls.written = max(calls.written, offset + bytes.count)
            calls.mostUnsynced = max(calls.mostUnsynced, calls.written - (calls.syncs.last ?? 0))
        }
    }
    func reserveZeros(_ fd: Int32, from start: Int, to end: Int, path: String) throws(StorageError) {
        try inner.reserveZeros(fd, from: start, to: end, path: path)
    }
    func truncate(_ fd: Int32, to length: Int, path: String) throws(StorageError) { try inner.truncate(fd, to: length, path: path) }
    func length(_ fd: Int32, path: String) throws(StorageError) -> Int { try inner.length(fd, path: path) }
    func dataSync(_ fd: Int32, path: String) throws(StorageError) {
        try inner.dataSync(fd, path: path)
        calls.withLockedValue { $0.syncs.append($0.written) }
    }
    func fileSync(_ fd: Int32, path: String) throws(StorageError) {
        try inner.fileSync(fd, path: path)
        calls.withLockedValue { $0.syncs.append($0.written) }
    }
    func syncDirectory(_ directory: String) throws(StorageError) { try inner.syncDirectory(directory) }
    func readAll(_ path: String) throws(StorageError) -> [UInt8] { try inner.readAll(path) }
    func rename(_ source: String, to destination: String) throws(StorageError) { try inner.rename(source, to: destination) }
    func remove(_ path: String) throws(StorageError) { try inner.remove(path) }
    func list(_ directory: String) throws(StorageError) -> [String] { try inner.list(directory) }
    func makeDirectory(_ path: String) throws(StorageError) { try inner.makeDirectory(path) }
    func exists(_ path: String) -> Bool { inner.exists(path) }
    func availableBytes(_ fd: Int32) -> Int? { inner.availableBytes(fd) }
    func startWriteback(_ fd: Int32, from start: Int, to end: Int) {
        calls.withLockedValue { $0.writeback.append(start..<end) }
    }
}

/// A large snapshot is written back as it is written, never piled up as dirty pages
/// for one final sync (which made the write-ahead log's syncs on the same disk wait).
@Suite struct SnapshotWritebackTests {
    @Test func test_aLargeSnapshot_isWrittenBackInWindows_andSyncedEverySyncBytes() throws {
        let fileSystem = RecordingFileSystem()
        try fileSystem.makeDirectory("/snap")
        let chunk = 64 << 10, chunks = 40  // 2.5 MiB in 64 KiB chunks
        let data = (0..<chunks).map { index in [UInt8](repeating: UInt8(index), count: chunk) }
        let metadata = SnapshotMetadata(index: 7, term: 2, confState: ConfState(voters: ["a"]))
        let pacer = WritebackPacer(windowBytes: 256 << 10, syncBytes: 1 << 20)
        try SnapshotFile.write(metadata, dataCount: chunk * chunks, chunks: data, directory: "/snap", fileSystem: fileSystem,
                               pacer: pacer)
        let calls = fileSystem.calls.withLockedValue { $0 }
        // Windows follow each other without gaps from the start of the file.
        #expect(calls.writeback.count >= 9)
        #expect(calls.writeback.first?.lowerBound == 0)
        for (previous, next) in zip(calls.writeback, calls.writeback.dropFirst()) {
            #expect(previous.upperBound == next.lowerBound)
            #expect(next.count >= 256 << 10)
        }
        // Synced at least every MiB (plus one chunk and the header) before the final fsync.
        #expect(calls.syncs.count >= 3)
        #expect(calls.mostUnsynced <= (1 << 20) + chunk + 1024)
        // And the file is the snapshot.
        let read = try SnapshotFile.read(directory: "/snap", index: 7, term: 2, fileSystem: fileSystem)
        #expect(read.data == data.flatMap { $0 })
    }

    @Test func test_aSmallSnapshot_needsNoHint() throws {
        let fileSystem = RecordingFileSystem()
        try fileSystem.makeDirectory("/snap")
        let metadata = SnapshotMetadata(index: 1, term: 1, confState: ConfState(voters: ["a"]))
        try SnapshotFile.write(metadata, dataCount: 3, chunks: [[1, 2, 3]], directory: "/snap", fileSystem: fileSystem)
        let calls = fileSystem.calls.withLockedValue { $0 }
        #expect(calls.writeback.isEmpty)
        #expect(calls.syncs.count == 1)  // the final fsync only
    }
}
