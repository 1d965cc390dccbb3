import AegisRaft
import Testing
@testable import AegisStorage

private let meta = SnapshotMetadata(index: 9, term: 2, confState: ConfState(voters: ["a"]))

@Test func test_fileSnapshotReceiver_reassemblesOnDiskAndDeletesTheFile() throws {
    let dir = TemporaryDirectory()
    let receiver = try FileSnapshotReceiver(directory: dir.path + "/incoming")
    try receiver.begin(meta)
    let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
    try receiver.append(Array(big[..<60_000]), at: 0)
    #expect(try FileIO.list(dir.path + "/incoming") == ["snapshot-receive.partial"])
    try receiver.append(Array(big[60_000...]), at: 60_000)
    #expect(try receiver.finish() == big)
    #expect(try FileIO.list(dir.path + "/incoming").isEmpty)
}

@Test func test_fileSnapshotReceiver_refusesOutOfOrderChunksAndAborts() throws {
    let dir = TemporaryDirectory()
    let receiver = try FileSnapshotReceiver(directory: dir.path)
    #expect(throws: StorageError.self) { try receiver.append([1], at: 0) }  // no begin
    try receiver.begin(meta)
    try receiver.append([1, 2], at: 0)
    #expect(throws: StorageError.self) { try receiver.append([3], at: 5) }
    receiver.abort()
    #expect(try FileIO.list(dir.path).isEmpty)
    // A new transfer starts from scratch.
    try receiver.begin(meta)
    try receiver.append([7], at: 0)
    #expect(try receiver.finish() == [7])
}

@Test func test_fileSnapshotReceiver_removesALeftoverOfAnEarlierRun() throws {
    let dir = TemporaryDirectory()
    try FileIO.makeDirectory(dir.path)
    try FileIO.writeDurably([1, 2, 3], to: dir.path + "/snapshot-receive.partial", directory: dir.path)
    #expect(try FileIO.list(dir.path) == ["snapshot-receive.partial"])
    _ = try FileSnapshotReceiver(directory: dir.path)
    #expect(try FileIO.list(dir.path).isEmpty)
}
