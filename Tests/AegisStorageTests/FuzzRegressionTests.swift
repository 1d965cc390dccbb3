import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

// Inputs found by the fuzz-wal target (Fuzz/Targets/fuzz-wal) that trapped recovery
// on arithmetic overflow. Each is the directory the harness wrote (segment files,
// base64), replayed through `DiskStorage.init`: it must refuse the directory with a
// corruption report, not crash.

/// Writes the segment files into a fresh directory and opens a storage on it.
private func openFuzzDirectory(_ files: [String: String]) throws -> (TemporaryDirectory, Result<DiskStorage, StorageError>) {
    let dir = TemporaryDirectory("aegis-fuzz-regression")
    for (name, base64) in files {
        let bytes = try #require(Data(base64Encoded: base64))
        try bytes.write(to: URL(fileURLWithPath: dir.path + "/" + name))
    }
    var options = DiskStorageOptions(segmentSize: 4096)
    options.preallocateSegments = false
    do { return (dir, .success(try DiskStorage(directory: dir.path, options: options))) } catch {
        return (dir, .failure(error))
    }
}

private func expectCorruption(_ files: [String: String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let (dir, result) = try openFuzzDirectory(files)
    defer { _ = dir }
    switch result {
    case .success(let storage):
        storage.close()
        Issue.record("expected a corruption error, the storage opened", sourceLocation: sourceLocation)
    case .failure(.corruption):
        break
    case .failure(let error):
        Issue.record("expected a corruption error, got \(error)", sourceLocation: sourceLocation)
    }
}

/// A damaged record followed by a valid entry record of index 0: the corruption report
/// computed "the index before the next valid entry" as 0 - 1 (Recovery.report).
@Test func test_fuzzRegression_damageFollowedByAnEntryOfIndexZero() throws {
    try expectCorruption([
        "0000000000000001-0000000000000001.wal":
            "FgAAADX+rjMAQUVHVwEAAQAAAAAAAAABAAAAAAAAABoAAABMzaGcAQEAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAB2EgAAAEKmAJgBAgAAAAAAAAABAAAAAAAAAARDggAAAO9ztnABAAAAAAAAAAAAdgEaAwAAAAAAAAABAAAAAAAAAAAQAAAAAGAAAQACABF2AAAAAAAAAgBPcHRpb25hbAAAAAAAAADvAQQBGQQAAAAWAAAANf6uMwBBRUdXAQABAAAAAAAAAAEAAAAAAAAAHgAAAAMAAAAAAAAAZGF0YXgeAAAAH51MlgMAAABbnymKAQAAAAAAAAA1dnJFAAAAAAA1dnJFAAAAAAA29Rm3ARAAAADkxavVAAAAAAAAAAEAAAAAAAAAAAAAAAAANXZyRQAAAAAANXZyRQAAAAAANXZyRQA=",
    ])
}

/// A well-framed compaction record at index 2^64-1: `LogState.firstIndex` (offset + 1)
/// overflowed when the storage opened.
@Test func test_fuzzRegression_compactionAtTheLargestIndex() throws {
    try expectCorruption([
        "0000000000000001-0000000000000005.wal":
            "FgAAAFh8sxIAQUVHVwEAAQAAAAAAAAAFAAAAAAAAACgAAAAjV7VzBP//////////////////////////////////////YgwAAAAAAAAAbGU=",
        "0000000000000002-0000000000000005.wal": "FgAAAKscSwEAQUVHVwEAAgAAAAAAAAAFAAAAAAAAAA==",
    ])
}

/// A damaged record, then an entry of index 0 and a snapshot marker: the covered-damage
/// check computed the last lost index as 0 - 1.
@Test func test_fuzzRegression_damageCoveredBySnapshotWithAnEntryOfIndexZero() throws {
    try expectCorruption([
        "0000000000000001-0000000000000001.wal":
            "FgAAADX+rjMAQUVHVwEAAQAAAAAAAAABAAAAAAAAAAAAAADCBkmkAlUAAADQaFnpAQAAAAAAAAAAD011AAAAAAAAAHYBGgMIAAAAAAAEAQAAAAAAAFsAAAAEAQAAAAAAAAAAAAAAAAAAEAAAABAAAAAAdgIRAQAAAAAAAAACAAAAAAAAAAA=",
    ])
}

/// Records holding an index or term beyond 2^62 (which recovery would overflow on) or
/// an entry of index 0 are malformed, whatever their checksum says.
@Test func test_fuzzRegression_recordsWithOutOfRangeIndexesAreMalformed() {
    func decode(_ build: (inout [UInt8]) -> Void) -> RecordFrame.Decoded {
        var bytes: [UInt8] = []
        build(&bytes)
        return bytes.withUnsafeBytes { RecordFrame.decode($0, at: 0) }
    }
    let cases: [(String, (inout [UInt8]) -> Void)] = [
        ("entry index 0", { RecordFrame.appendEntry(LogEntry(index: 0, term: 1), to: &$0) }),
        ("entry term 2^64-1", { RecordFrame.appendEntry(LogEntry(index: 1, term: .max), to: &$0) }),
        ("compaction at 2^64-1", { RecordFrame.appendCompact(index: .max, term: 1, to: &$0) }),
        ("hard state commit 2^63", { RecordFrame.appendHardState(RaftState(term: 1, commitIndex: 1 << 63), to: &$0) }),
        ("snapshot at 2^62+1", {
            RecordFrame.appendSnapshot(SnapshotMetadata(index: (1 << 62) + 1, term: 1), resetsLog: true, to: &$0)
        }),
        ("segment sequence 2^64-1", { RecordFrame.appendSegmentHeader(sequence: .max, firstIndex: 1, to: &$0) }),
    ]
    for (name, build) in cases {
        guard case .malformed = decode(build) else {
            Issue.record("\(name): expected a malformed record")
            continue
        }
    }
    guard case .record = decode({ RecordFrame.appendEntry(LogEntry(index: 1 << 62, term: 1 << 62), to: &$0) }) else {
        Issue.record("an entry at 2^62 is valid")
        return
    }
}
