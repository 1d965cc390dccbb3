import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

/// Takes every byte it is given (the preparer of `DiskStorageTests`).
struct CollectingPreparation: SnapshotPreparation {
    let index: LogIndex
    var bytes: [UInt8] = []

    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int {
        bytes.append(contentsOf: chunk)
        return chunk.count
    }

    mutating func finish() -> (any Sendable)? { "prepared \(index) \(bytes)" }
}

/// Takes only whole records (a length byte, then that many bytes), as a snapshot
/// parser does: a record cut by a chunk boundary is passed again with the next bytes.
struct RecordPreparation: SnapshotPreparation {
    var records: [[UInt8]] = []
    var calls = 0

    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int {
        calls += 1
        var offset = 0
        while offset < chunk.count {
            let length = Int(chunk[offset])
            guard offset + 1 + length <= chunk.count else { break }
            records.append(Array(chunk[(offset + 1)..<(offset + 1 + length)]))
            offset += 1 + length
        }
        return offset
    }

    mutating func finish() -> (any Sendable)? { records }
}

private func recordData(count: Int) -> ([UInt8], [[UInt8]]) {
    var data: [UInt8] = []
    var records: [[UInt8]] = []
    for n in 0..<count {
        let record = (0..<(n * 37 % 200)).map { UInt8(truncatingIfNeeded: $0 &+ n) }
        data.append(UInt8(record.count))
        data.append(contentsOf: record)
        records.append(record)
    }
    return (data, records)
}

/// Every record arrives once and whole, whatever the chunk size: smaller than a record
/// (the buffer grows), equal to one, or larger than the file.
@Test(arguments: [1, 7, 64, 199, 4096, 1 << 20])
func test_snapshotStream_handsEveryRecordOnceAcrossChunkBoundaries(chunkBytes: Int) throws {
    let dir = TemporaryDirectory()
    let (data, records) = recordData(count: 500)
    let metadata = SnapshotMetadata(index: 42, term: 3, confState: ConfState(voters: ["a", "b"]))
    try SnapshotFile.write(Snapshot(metadata: metadata, data: data), directory: dir.path, fileSystem: PosixFileSystem())
    let (read, prepared) = try SnapshotFile.stream(directory: dir.path, index: 42, term: 3, chunkBytes: chunkBytes) { _ in
        RecordPreparation()
    }
    #expect(read == metadata)
    #expect(prepared as? [[UInt8]] == records)
}

/// A damaged file is refused as `read` refuses it, and nothing prepared is handed out.
@Test func test_snapshotStream_refusesADamagedFile() throws {
    let dir = TemporaryDirectory()
    let (data, _) = recordData(count: 300)
    let metadata = SnapshotMetadata(index: 9, term: 1, confState: ConfState(voters: ["a"]))
    try SnapshotFile.write(Snapshot(metadata: metadata, data: data), directory: dir.path, fileSystem: PosixFileSystem())
    let path = dir.path + "/" + SnapshotFile.fileName(index: 9, term: 1)
    var bytes = try PosixFileSystem().readAll(path)
    bytes[bytes.count / 2] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    for chunk in [5, 1 << 16] {
        #expect(throws: StorageError.self) {
            _ = try SnapshotFile.stream(directory: dir.path, index: 9, term: 1, chunkBytes: chunk) { _ in RecordPreparation() }
        }
        #expect(throws: StorageError.self) { _ = try SnapshotFile.read(directory: dir.path, index: 9, term: 1) }
    }
    // Cut short: the length no longer matches.
    try Data(bytes.prefix(bytes.count - 10)).write(to: URL(fileURLWithPath: path))
    #expect(throws: StorageError.self) {
        _ = try SnapshotFile.stream(directory: dir.path, index: 9, term: 1) { _ in RecordPreparation() }
    }
}

/// A preparation that stops consuming, or throws, yields nothing; the file still
/// counts as read and verified.
@Test func test_snapshotStream_aPreparationThatGivesUpYieldsNothing() throws {
    struct Refusing: SnapshotPreparation {
        mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int { throw StorageError.stopped(reason: "test") }
        mutating func finish() -> (any Sendable)? { "finished" }
    }
    struct Leaving: SnapshotPreparation {
        mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int { max(0, chunk.count - 1) }
        mutating func finish() -> (any Sendable)? { "finished" }
    }
    let dir = TemporaryDirectory()
    let metadata = SnapshotMetadata(index: 5, term: 2, confState: ConfState(voters: ["a"]))
    try SnapshotFile.write(Snapshot(metadata: metadata, data: Array(repeating: 7, count: 10_000)), directory: dir.path,
                           fileSystem: PosixFileSystem())
    let refused = try SnapshotFile.stream(directory: dir.path, index: 5, term: 2, chunkBytes: 1000) { _ in Refusing() }
    #expect(refused.metadata == metadata)
    #expect(refused.prepared == nil)
    let left = try SnapshotFile.stream(directory: dir.path, index: 5, term: 2, chunkBytes: 1000) { _ in Leaving() }
    #expect(left.prepared == nil)
}

/// A preparation is finished only with data whose checksum matched: a damaged file's
/// preparation is never finished (nothing built from unverified bytes is handed on).
@Test func test_snapshotStream_finishesOnlyVerifiedData() throws {
    final class Box: @unchecked Sendable { var finished = 0 }
    struct Finishing: SnapshotPreparation {
        let box: Box
        mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int { chunk.count }
        mutating func finish() -> (any Sendable)? {
            box.finished += 1
            return "done"
        }
    }
    let dir = TemporaryDirectory()
    let metadata = SnapshotMetadata(index: 3, term: 1, confState: ConfState(voters: ["a"]))
    try SnapshotFile.write(Snapshot(metadata: metadata, data: Array(repeating: 1, count: 5_000)), directory: dir.path,
                           fileSystem: PosixFileSystem())
    let box = Box()
    let good = try SnapshotFile.stream(directory: dir.path, index: 3, term: 1, chunkBytes: 700) { _ in Finishing(box: box) }
    #expect(good.prepared as? String == "done" && box.finished == 1)
    let path = dir.path + "/" + SnapshotFile.fileName(index: 3, term: 1)
    var bytes = try PosixFileSystem().readAll(path)
    bytes[bytes.count - 100] ^= 0x40
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect(throws: StorageError.self) {
        _ = try SnapshotFile.stream(directory: dir.path, index: 3, term: 1, chunkBytes: 700) { _ in Finishing(box: box) }
    }
    #expect(box.finished == 1)
}
