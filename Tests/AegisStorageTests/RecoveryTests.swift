import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

/// Helpers for damaging a closed storage's files on purpose.
struct DamageLab {
    let dir = TemporaryDirectory("aegis-recovery")
    var path: String { dir.path }
    let options = DiskStorageOptions(segmentSize: 4096)

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

@Test func test_recovery_truncatesATornLastRecordAtEveryByteOffset() throws {
    let lab = DamageLab()
    try lab.write(20)
    guard let last = try lab.records().last, case .entry(let lastEntry) = last.record else {
        Issue.record("the last record is not an entry"); return
    }
    #expect(lastEntry.index == 20)
    let original = try lab.bytes(last.file)
    for cut in last.offset..<original.count {
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

@Test func test_recovery_truncatesAZeroedTailFromASectorBoundary() throws {
    let lab = DamageLab()
    try lab.write(30)
    let items = try lab.records()
    guard let file = items.last?.file else { Issue.record("no records"); return }
    let original = try lab.bytes(file)
    let inFile = items.filter { $0.file == file }
    var starts = [inFile[inFile.count - 1].offset, inFile[inFile.count - 2].offset]
    starts += stride(from: (inFile[inFile.count - 3].offset / 512 + 1) * 512, to: original.count, by: 512)
    for start in starts {
        var damaged = original
        for i in start..<damaged.count { damaged[i] = 0 }
        try lab.replace(file, with: damaged)
        let storage = try lab.open()
        let ends = Dictionary(uniqueKeysWithValues: zip(inFile.map(\.offset), inFile.dropFirst().map(\.offset) + [original.count]))
        let survivors = items.compactMap { item -> LogIndex? in
            guard case .entry(let e) = item.record else { return nil }
            return item.file != file || (ends[item.offset] ?? .max) <= start ? e.index : nil
        }
        guard let lastSurvivor = survivors.last else { Issue.record("no survivor"); return }
        #expect(try storage.lastIndex() == lastSurvivor, "zeroed from \(start)")
        #expect(storage.recovery.tornTail != nil, "zeroed from \(start)")
        storage.close()
        try lab.replace(file, with: original)
    }
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
    damaged[damaged.count - 3] ^= 0x10
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
