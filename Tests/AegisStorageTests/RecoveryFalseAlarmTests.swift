import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

// Recovery must not refuse a node for bytes that are not data (stray bytes in the
// preallocated space after the last record) or for damage its own snapshot already
// covers, and must still refuse damage to synced data the snapshot does not cover.

/// Whether `item` is the entry at `index`.
private func isEntry(_ item: WALReader.Item, _ index: LogIndex) -> Bool {
    if case .entry(let entry) = item.record { return entry.index == index }
    return false
}

/// Opens `lab`, expects entries `first...last` intact, and closes it again.
private func expectIntact(_ lab: DamageLab, _ first: LogIndex, _ last: LogIndex, _ what: String,
                          sourceLocation: SourceLocation = #_sourceLocation) throws -> RecoveryReport {
    let storage = try lab.open()
    defer { storage.close() }
    #expect(try storage.firstIndex() == first && storage.lastIndex() == last, "\(what)", sourceLocation: sourceLocation)
    #expect(try storage.entries(from: first, to: last + 1, maxBytes: .max) == (first...last).map(lab.entry),
            "\(what)", sourceLocation: sourceLocation)
    return storage.recovery
}

/// A byte flipped anywhere in the zero-filled space after the last record (in the spot
/// where the next record header would go, or further on) is not data: every record is
/// recovered, the stray bytes are cleared, and the log continues where it ended.
@Test func test_recovery_ignoresAByteFlippedInThePreallocatedTail() throws {
    let lab = DamageLab(segmentSize: 64 << 10)
    try lab.write(20, hardStateAt: 20)
    guard let last = try lab.records().last else { Issue.record("no records"); return }
    let file = last.file
    let original = try lab.bytes(file)
    let end = try lab.end(of: last)
    #expect(original.count == 64 << 10 && end < original.count - 1000, "a preallocated segment")
    // Each field of the header that would follow (length, checksum, type), then beyond it.
    let offsets = [end, end + 1, end + 3, end + 4, end + 7, end + 8, end + 9, end + 100, end + 4096, original.count - 1]
    for offset in offsets {
        for value: UInt8 in [0x01, 0x10, 0xFF] {
            var damaged = original
            damaged[offset] = value
            try lab.replace(file, with: damaged)
            let what = "byte \(value) at \(offset - end) after the last record"
            let recovery = try expectIntact(lab, 1, 20, what)
            #expect(recovery.tornTail?.offset == end, "\(what)")
            #expect(recovery.hardState.commitIndex == 20, "\(what)")
            // The stray bytes were cleared: the log continues and reopens cleanly.
            let storage = try lab.open()
            try storage.append([lab.entry(21)])
            storage.close()
            let again = try expectIntact(lab, 1, 21, "reopen after \(what)")
            #expect(again.tornTail == nil, "reopen after \(what)")
            try lab.replace(file, with: original)
        }
    }
}

/// The rule behind the test above: a stray byte leaves at most one sign of a record,
/// a damaged byte of a written header leaves at least two.
@Test func test_segmentScanner_tellsStrayBytesFromADamagedRecordHeader() throws {
    var record: [UInt8] = []
    RecordFrame.appendEntry(LogEntry(index: 7, term: 2, data: [1, 2, 3]), to: &record)
    record += [UInt8](repeating: 0, count: 64)
    for offset in 0..<RecordFrame.headerSize {
        for value: UInt8 in [0x00, 0x01, 0x80, 0xFF] {
            var zeros = [UInt8](repeating: 0, count: 64)
            zeros[offset] = value
            let stray = zeros.withUnsafeBytes { SegmentScanner.recordSigns($0, at: 0) }
            #expect(stray <= 1, "stray byte \(value) at \(offset)")
            var damaged = record
            damaged[offset] = value
            let written = damaged.withUnsafeBytes { SegmentScanner.recordSigns($0, at: 0) }
            #expect(written >= 2, "written header with byte \(value) at \(offset)")
        }
    }
}

/// The check above can still fail: damage to the header of the last *synced* record
/// (its type, its checksum) is refused, not taken for free space.
@Test func test_recovery_stillRefusesADamagedHeaderOfTheLastRecord() throws {
    let lab = DamageLab(segmentSize: 64 << 10)
    try lab.write(20)
    guard let last = try lab.records().last, isEntry(last, 20) else { Issue.record("entry 20 is not last"); return }
    let original = try lab.bytes(last.file)
    for (offset, value) in [(8, UInt8(0)), (8, 3), (8, 0x41), (4, 0), (5, 0xA5), (7, 0)] {
        var damaged = original
        damaged[last.offset + offset] = value
        if damaged == original { continue }
        try lab.replace(last.file, with: damaged)
        let report = lab.expectCorruption()
        #expect(report?.offset == last.offset && report?.firstLostIndex == 20, "byte \(value) at header offset \(offset)")
        try lab.replace(last.file, with: original)
    }
}

/// Writes `count` entries, snapshots at `snapshotAt` (after all of them) and closes.
private func writeWithSnapshot(_ lab: DamageLab, _ count: LogIndex, snapshotAt: LogIndex,
                               hardStateAt: LogIndex? = nil) throws {
    try lab.write(count, hardStateAt: hardStateAt)
    let storage = try lab.open()
    try storage.createSnapshot(at: snapshotAt, conf: ConfState(voters: ["n1"]), data: [7, 7, 7])
    storage.close()
}

/// A bit flip in an entry the snapshot covers, in an older segment: dropped with a
/// warning; the log continues after the snapshot and nothing acknowledged is lost.
@Test func test_recovery_dropsADamagedRecordBelowTheSnapshotInAnOlderSegment() throws {
    let lab = DamageLab()
    try writeWithSnapshot(lab, 80, snapshotAt: 60)
    let items = try lab.records()
    #expect(lab.segments.count >= 3)
    guard let target = items.first(where: { isEntry($0, 10) }) else { Issue.record("no entry 10"); return }
    #expect(target.file != lab.segments.last, "entry 10 is in an older segment")
    var damaged = try lab.bytes(target.file)
    damaged[target.offset + RecordFrame.headerSize + 40] ^= 0x04
    try lab.replace(target.file, with: damaged)

    let recovery = try expectIntact(lab, 61, 80, "entry 10 damaged, snapshot at 60")
    #expect(recovery.snapshotIndex == 60)
    #expect(recovery.droppedBelowSnapshot.count == 1)
    let dropped = recovery.droppedBelowSnapshot.first
    #expect(dropped?.file == target.file && dropped?.offset == target.offset)
    #expect(dropped?.firstLostIndex == 10 && dropped?.lastLostIndex == 10, "\(String(describing: dropped))")
    #expect(recovery.warnings.count == 1 && recovery.warnings.first?.contains("snapshot at 60") == true)

    // The node keeps working, and reopens the same way.
    let storage = try lab.open()
    try storage.append([lab.entry(81)])
    #expect(try storage.snapshot().data == [7, 7, 7])
    storage.close()
    _ = try expectIntact(lab, 61, 81, "reopened")
}

/// Damage to a record's length leaves its extent unknown: in an older segment the rest
/// of that segment is skipped, which the snapshot covers too.
@Test func test_recovery_dropsTheRestOfAnOlderSegmentWhenTheSnapshotCoversIt() throws {
    let lab = DamageLab()
    try writeWithSnapshot(lab, 80, snapshotAt: 70)
    let items = try lab.records()
    guard let target = items.first(where: { isEntry($0, 10) }) else { Issue.record("no entry 10"); return }
    var damaged = try lab.bytes(target.file)
    damaged[target.offset + 1] ^= 0x20   // the length now points past the end of the segment
    try lab.replace(target.file, with: damaged)
    let recovery = try expectIntact(lab, 71, 80, "length of entry 10 damaged, snapshot at 70")
    #expect(recovery.droppedBelowSnapshot.first?.firstLostIndex == 10)
}

/// In the segment being written, a damaged entry the snapshot covers is dropped when it
/// is exactly one record and exactly one index is missing (it cannot have been a vote).
@Test func test_recovery_dropsADamagedEntryBelowTheSnapshotInTheLastSegment() throws {
    let lab = DamageLab(segmentSize: 1 << 20)
    try writeWithSnapshot(lab, 40, snapshotAt: 30)
    #expect(lab.segments.count == 1)
    guard let target = try lab.records().first(where: { isEntry($0, 5) }) else { Issue.record("no entry 5"); return }
    var damaged = try lab.bytes(target.file)
    damaged[target.offset + RecordFrame.headerSize + 60] ^= 0x80
    try lab.replace(target.file, with: damaged)
    let recovery = try expectIntact(lab, 31, 40, "entry 5 damaged, snapshot at 30")
    #expect(recovery.droppedBelowSnapshot.map(\.firstLostIndex) == [5])
}

/// The check can fail: a damaged synced entry above the snapshot is refused, with the
/// same report as without a snapshot.
@Test func test_recovery_stillRefusesADamagedRecordAboveTheSnapshot() throws {
    for segmentSize in [4096, 1 << 20] {
        let lab = DamageLab(segmentSize: segmentSize)
        try writeWithSnapshot(lab, 80, snapshotAt: 30)
        guard let target = try lab.records().first(where: { isEntry($0, 50) }) else { Issue.record("no entry 50"); return }
        var damaged = try lab.bytes(target.file)
        damaged[target.offset + RecordFrame.headerSize + 40] ^= 0x04
        try lab.replace(target.file, with: damaged)
        let report = lab.expectCorruption()
        #expect(report?.offset == target.offset && report?.firstLostIndex == 50 && report?.lastLostIndex == 50,
                "segment size \(segmentSize): \(String(describing: report))")
    }
}

/// The check can fail: below the snapshot, a damaged record that may have held the
/// latest hard state (a vote) is refused.
@Test func test_recovery_stillRefusesADamagedHardStateBelowTheSnapshot() throws {
    let lab = DamageLab(segmentSize: 1 << 20)
    try writeWithSnapshot(lab, 40, snapshotAt: 30, hardStateAt: 10)
    guard let target = try lab.records().first(where: {
        if case .hardState(let state) = $0.record { return state.commitIndex == 10 } else { return false }
    }) else { Issue.record("no hard state record"); return }
    var damaged = try lab.bytes(target.file)
    damaged[target.offset + RecordFrame.headerSize + 3] ^= 0x01
    try lab.replace(target.file, with: damaged)
    let report = lab.expectCorruption()
    #expect(report?.offset == target.offset, "\(String(describing: report))")
}
