import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

/// Helpers for damaging a closed storage's files on purpose.
struct DamageLab {
    let dir = TemporaryDirectory("aegis-recovery")
    var path: String { dir.path }
    /// Whether segments are zero-filled when created (the default) or grow by appends.
    var preallocate = true
    var segmentSize = 4096
    var options: DiskStorageOptions {
        var options = DiskStorageOptions(segmentSize: segmentSize)
        options.preallocateSegments = preallocate
        return options
    }

    init(preallocate: Bool = true, segmentSize: Int = 4096) {
        self.preallocate = preallocate
        self.segmentSize = segmentSize
    }

    func entry(_ index: LogIndex) -> LogEntry {
        LogEntry(index: index, term: 1, data: [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 100),
                 timestamp: index)
    }

    /// Appends `1...count`, one batch each, with the hard state set after `hardStateAt`.
    func write(_ count: LogIndex, hardStateAt: LogIndex? = nil) throws {
        let storage = try DiskStorage(directory: path, options: options)
        for i in 1...count {
            try storage.append([entry(i)])
            if i == hardStateAt { try storage.setHardState(RaftState(term: 1, votedFor: "n1", commitIndex: i)) }
        }
        storage.close()
    }

    var segments: [String] {
        (try? FileIO.list(path).filter { $0.hasSuffix(".wal") }.sorted().map { path + "/" + $0 }) ?? []
    }

    /// Every record of the log with its file and offset.
    func records() throws -> [WALReader.Item] {
        var reader = try WALReader(directory: path)
        var items: [WALReader.Item] = []
        while let item = try reader.next() { items.append(item) }
        return items
    }

    func bytes(_ file: String) throws -> [UInt8] { try FileIO.readAll(file) }

    /// The offset just past a record (a preallocated file continues with zeros).
    func end(of item: WALReader.Item) throws -> Int {
        let bytes = try bytes(item.file)
        guard case let .record(_, end) = bytes.withUnsafeBytes({ RecordFrame.decode($0, at: item.offset) }) else {
            Issue.record("no record at \(item.offset) of \(item.file)")
            return bytes.count
        }
        return end
    }

    func replace(_ file: String, with bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: file))
    }

    func open() throws -> DiskStorage { try DiskStorage(directory: path, options: options) }

    /// Opens and expects a corruption report.
    func expectCorruption(_ sourceLocation: SourceLocation = #_sourceLocation) -> CorruptionReport? {
        do {
            let storage = try open()
            storage.close()
            Issue.record("expected a corruption error, the storage opened", sourceLocation: sourceLocation)
        } catch let StorageError.corruption(report) {
            return report
        } catch {
            Issue.record("expected a corruption error, got \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }
}

/// The file ends inside the last record: a segment written without preallocation, or
/// a batch that extended a preallocated one past its end.
@Test(arguments: [true, false])
func test_recovery_truncatesATornLastRecordAtEveryByteOffset(preallocate: Bool) throws {
    let lab = DamageLab(preallocate: preallocate)
    try lab.write(20)
    guard let last = try lab.records().last, case .entry(let lastEntry) = last.record else {
        Issue.record("the last record is not an entry"); return
    }
    #expect(lastEntry.index == 20)
    let original = try lab.bytes(last.file)
    #expect((original.count == 4096) == preallocate)
    for cut in last.offset..<(try lab.end(of: last)) {
        try lab.replace(last.file, with: Array(original[..<cut]))
        let storage = try lab.open()
        #expect(try storage.lastIndex() == 19, "cut at \(cut)")
        #expect((storage.recovery.tornTail != nil) == (cut > last.offset), "cut at \(cut)")
        #expect(storage.recovery.tornTail?.offset ?? last.offset == last.offset)
        try storage.append([lab.entry(20)])
        storage.close()
        let again = try lab.open()
        #expect(try again.lastIndex() == 20 && again.recovery.tornTail == nil, "reopen after cut at \(cut)")
        #expect(try again.entries(from: 20, to: 21, maxBytes: .max) == [lab.entry(20)])
        again.close()
        try lab.replace(last.file, with: original)
    }
}

/// Sectors that never reached the disk, the file length unchanged. Zeros from inside a
/// record are a torn tail; zeros from a record boundary are indistinguishable from
/// preallocated space (and were never acknowledged): the log ends there, nothing to cut.
@Test(arguments: [true, false])
func test_recovery_truncatesAZeroedTailFromASectorBoundary(preallocate: Bool) throws {
    let lab = DamageLab(preallocate: preallocate)
    try lab.write(30)
    let items = try lab.records()
    guard let file = items.last?.file else { Issue.record("no records"); return }
    let original = try lab.bytes(file)
    let inFile = items.filter { $0.file == file }
    let ends = Dictionary(uniqueKeysWithValues: try inFile.map { ($0.offset, try lab.end(of: $0)) })
    let dataEnd = ends[inFile[inFile.count - 1].offset] ?? original.count
    var starts = [inFile[inFile.count - 1].offset, inFile[inFile.count - 2].offset]
    starts += stride(from: (inFile[inFile.count - 3].offset / 512 + 1) * 512, to: original.count, by: 512)
    for start in starts {
        var damaged = original
        for i in start..<damaged.count { damaged[i] = 0 }
        try lab.replace(file, with: damaged)
        let storage = try lab.open()
        let survivors = items.compactMap { item -> LogIndex? in
            guard case .entry(let e) = item.record else { return nil }
            return item.file != file || (ends[item.offset] ?? .max) <= start ? e.index : nil
        }
        guard let lastSurvivor = survivors.last else { Issue.record("no survivor"); return }
        let insideARecord = start < dataEnd && ends[start] == nil
        #expect(try storage.lastIndex() == lastSurvivor, "zeroed from \(start)")
        #expect((storage.recovery.tornTail != nil) == insideARecord, "zeroed from \(start)")
        storage.close()
        try lab.replace(file, with: original)
    }
}

@Test func test_recovery_keepsPreallocatedSpaceOnlyInTheLastSegment() throws {
    let lab = DamageLab()
    try lab.write(60)
    let items = try lab.records()
    let segments = lab.segments
    #expect(segments.count >= 3)
    for file in segments {
        let length = try lab.bytes(file).count
        guard let last = items.last(where: { $0.file == file }) else { Issue.record("empty \(file)"); continue }
        // Earlier segments were cut to their records when the next one started.
        #expect(length == (file == segments.last ? 4096 : try lab.end(of: last)), "\(file)")
    }
    let storage = try lab.open()
    #expect(try storage.lastIndex() == 60 && storage.recovery.tornTail == nil)
    storage.close()
    #expect(try lab.bytes(segments[segments.count - 1]).count == 4096)

    // A zeroed end of an earlier segment is lost synced data, not free space.
    let middle = segments[segments.count / 2]
    guard let target = items.last(where: { $0.file == middle }), case .entry(let entry) = target.record else {
        Issue.record("no entry at the end of \(middle)"); return
    }
    let original = try lab.bytes(middle)
    var damaged = original
    for i in target.offset..<damaged.count { damaged[i] = 0 }
    try lab.replace(middle, with: damaged)
    let report = lab.expectCorruption()
    #expect(report?.file == middle && report?.offset == target.offset)
    #expect(report?.firstLostIndex == entry.index && report?.lastLostIndex == entry.index, "\(String(describing: report))")
}

@Test func test_recovery_refusesABitFlipInTheMiddleOfASegment() throws {
    let lab = DamageLab()
    try lab.write(60)
    let items = try lab.records()
    let entries = items.filter { if case .entry = $0.record { return true } else { return false } }
    // A record in the middle of the last segment, and one in an earlier segment.
    let targets = [entries[entries.count - 5], entries[3]]
    for target in targets {
        guard case .entry(let entry) = target.record else { continue }
        let original = try lab.bytes(target.file)
        for bit in [0, 37, 8 * 20 + 3] {
            var damaged = original
            damaged[target.offset + RecordFrame.headerSize + 30 + bit / 8] ^= UInt8(1 << (bit % 8))
            try lab.replace(target.file, with: damaged)
            let report = lab.expectCorruption()
            #expect(report?.file == target.file)
            #expect(report?.offset == target.offset)
            #expect(report?.firstLostIndex == entry.index)
            #expect(report?.lastLostIndex == entry.index, "\(String(describing: report))")
            try lab.replace(target.file, with: original)
        }
    }
    let storage = try lab.open()
    #expect(try storage.lastIndex() == 60)
    storage.close()
}

@Test func test_recovery_refusesABitFlipInTheLengthOfAMiddleRecord() throws {
    let lab = DamageLab()
    try lab.write(40)
    let items = try lab.records()
    guard let target = items.last(where: { if case .entry(let e) = $0.record { return e.index == 35 } else { return false } })
    else { Issue.record("entry 35 not found"); return }
    let original = try lab.bytes(target.file)
    for bit in [3, 20, 30] {
        var damaged = original
        damaged[target.offset + bit / 8] ^= UInt8(1 << (bit % 8))
        try lab.replace(target.file, with: damaged)
        let report = lab.expectCorruption()
        #expect(report?.offset == target.offset && report?.firstLostIndex == 35, "bit \(bit): \(String(describing: report))")
        try lab.replace(target.file, with: original)
    }
}

@Test func test_recovery_refusesADamagedFinalRecordWithoutAZeroedSector() throws {
    let lab = DamageLab()
    try lab.write(10)
    guard let last = try lab.records().last else { return }
    var damaged = try lab.bytes(last.file)
    damaged[try lab.end(of: last) - 3] ^= 0x10
    try lab.replace(last.file, with: damaged)
    let report = lab.expectCorruption()
    #expect(report?.offset == last.offset && report?.firstLostIndex == 10 && report?.lastLostIndex == nil)
}

@Test func test_recovery_refusesABitFlipInTheHardState() throws {
    let lab = DamageLab()
    try lab.write(12, hardStateAt: 6)
    guard let record = try lab.records().last(where: {
        if case .hardState(let s) = $0.record { return s.commitIndex == 6 } else { return false }
    }) else { Issue.record("no hard state record"); return }
    var damaged = try lab.bytes(record.file)
    damaged[record.offset + RecordFrame.headerSize + 9] ^= 0x01
    try lab.replace(record.file, with: damaged)
    let report = lab.expectCorruption()
    #expect(report?.file == record.file && report?.offset == record.offset)
    #expect(report?.firstLostIndex == 7 && report?.lastLostIndex == 6, "metadata only: \(String(describing: report))")
}

@Test func test_recovery_refusesAMissingMiddleSegment() throws {
    let lab = DamageLab()
    try lab.write(120)
    let segments = lab.segments
    #expect(segments.count >= 3)
    let middle = segments[segments.count / 2]
    try FileIO.remove(middle)
    let report = lab.expectCorruption()
    #expect(report?.reason.contains("missing") == true)
    #expect(report?.file == segments[segments.count / 2 + 1])
}

@Test func test_recovery_refusesACorruptedSnapshotFile() throws {
    let lab = DamageLab()
    let storage = try lab.open()
    try storage.append((1...5).map(lab.entry))
    try storage.createSnapshot(at: 4, conf: ConfState(voters: ["a"]), data: [9, 9, 9])
    storage.close()
    let name = SnapshotFile.fileName(index: 4, term: 1)
    var bytes = try lab.bytes(lab.path + "/" + name)
    bytes[bytes.count / 2] ^= 0xFF
    try lab.replace(lab.path + "/" + name, with: bytes)
    let report = lab.expectCorruption()
    #expect(report?.file.hasSuffix(name) == true && report?.lastLostIndex == 4)
}
