import AegisRaft

/// A segment file name: `<sequence>-<first index>.wal`, both as 16 hex digits, so
/// that names sort in log order.
struct SegmentName: Hashable, Comparable {
    var sequence: UInt64
    var firstIndex: LogIndex

    var fileName: String { "\(hex16(sequence))-\(hex16(firstIndex)).wal" }

    /// Parses a file name; `nil` when it is not a segment name.
    init?(fileName: String) {
        let parts = fileName.split(separator: "-")
        guard fileName.hasSuffix(".wal"), parts.count == 2, parts[0].count == 16,
              let sequence = UInt64(parts[0], radix: 16),
              let first = UInt64(parts[1].dropLast(4), radix: 16), parts[1].count == 20 else { return nil }
        self.init(sequence: sequence, firstIndex: first)
    }

    init(sequence: UInt64, firstIndex: LogIndex) {
        self.sequence = sequence
        self.firstIndex = firstIndex
    }

    static func < (a: SegmentName, b: SegmentName) -> Bool { a.sequence < b.sequence }
}

/// Sixteen lower-case hex digits.
func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

/// A record and the offset of its frame in the segment.
struct ScannedRecord {
    var record: WALRecord
    var offset: Int
}

/// An undecodable record of a segment and how it was classified.
struct SegmentDamage {
    /// Offset of the bad record.
    var offset: Int
    /// What is wrong with it.
    var reason: String
    /// `true` for a torn tail: the unacknowledged end of the last segment (or stray
    /// bytes in its preallocated space, see `isFreeSpace`).
    var isTornTail: Bool
    /// `true` when the bytes are not a record at all but stray bytes in the
    /// preallocated space after the last record (a kind of torn tail).
    var isFreeSpace = false
    /// Offset of the first valid record found after the damage, if any.
    var nextValidOffset: Int?
    /// Index of the first entry at or after `nextValidOffset`, if any.
    var nextValidIndex: LogIndex?
    /// `true` when the damage is exactly one record whose frame (its length field)
    /// ends where the next valid record starts: the scan resumed there.
    var isSingleRecord = false
    /// How many valid records of the segment precede the damage.
    var recordsBefore = 0
}

/// The records of one segment. The scan continues after a damaged record only when the
/// record's own length leads to the next valid record (`SegmentDamage.isSingleRecord`);
/// otherwise it stops at the damage.
struct SegmentScan {
    var records: [ScannedRecord] = []
    /// Offset just past the last valid record.
    var validEnd = 0
    /// Every damage found, in file order.
    var damages: [SegmentDamage] = []
    /// The first damage, if any.
    var damage: SegmentDamage? { damages.first }
    /// `true` when the last segment ends in preallocated space: from `validEnd`, a
    /// record boundary, to the end of the file every byte is zero.
    var endsInPreallocatedSpace = false
}

/// Reads the records of a segment and classifies the first damaged one.
///
/// In the last segment, zeros from a record boundary to the end of the file are the
/// preallocated space not yet written: the end of the log, not damage. (A record that
/// never reached the disk at all looks the same, and was never acknowledged.)
///
/// After the last valid record of the last segment, with no valid record anywhere
/// after it, bytes whose header shows at most one sign of a record (see
/// `recordSigns`) are **not a record**: stray bytes in the preallocated space, or a
/// write whose first bytes never reached the disk. The log ends there.
///
/// A damaged record is a **torn tail** only when it is in the last segment, no valid
/// record follows it anywhere in the file, and it is either cut short by the end of
/// the file, zeroed (its header and everything after it are zero), or complete with a
/// checksum mismatch whose bytes from a 512-byte sector boundary onwards are zero and
/// followed only by zeros (a sector that never reached the disk). Anything else is
/// corruption of data that may have been acknowledged.
enum SegmentScanner {
    static let sectorSize = 512

    static func scan(_ bytes: [UInt8], isLastSegment: Bool) -> SegmentScan {
        bytes.withUnsafeBytes { raw in scan(raw, isLastSegment: isLastSegment) }
    }

    static func scan(_ raw: UnsafeRawBufferPointer, isLastSegment: Bool) -> SegmentScan {
        var result = SegmentScan()
        var offset = 0
        while offset < raw.count {
            let decoded = RecordFrame.decode(raw, at: offset)
            if case let .record(record, end) = decoded {
                result.records.append(ScannedRecord(record: record, offset: offset))
                offset = end
                result.validEnd = end
                continue
            }
            if case .zeroHeader = decoded, isLastSegment, allZero(raw, from: offset) {
                result.endsInPreallocatedSpace = true
                break
            }
            var damage = classify(decoded, raw, at: offset, isLastSegment: isLastSegment)
            damage.recordsBefore = result.records.count
            result.damages.append(damage)
            guard damage.isSingleRecord, let next = damage.nextValidOffset else { break }
            offset = next
        }
        return result
    }

    /// How many of the three signs of a record the log writes the header at `offset`
    /// shows: a known type after the segment header (entry, hard state, snapshot,
    /// compaction), a length of at least the smallest payload (16 bytes), a non-zero
    /// checksum. A written header shows all three; damage to one of its fields
    /// (one flipped bit or byte) leaves at least two. Zeros with one damaged field show
    /// at most one.
    static func recordSigns(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Int {
        guard raw.count - offset >= RecordFrame.headerSize else { return 0 }
        let length = raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
        let crc = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self).littleEndian
        let type = raw[offset + 8]
        var signs = 0
        if type >= RecordType.entry.rawValue && type <= RecordType.compact.rawValue { signs += 1 }
        if length >= RecordFrame.minimumPayload { signs += 1 }
        if crc != 0 { signs += 1 }
        return signs
    }

    private static func classify(_ decoded: RecordFrame.Decoded, _ raw: UnsafeRawBufferPointer, at offset: Int,
                                 isLastSegment: Bool) -> SegmentDamage {
        let next = nextValidRecord(raw, after: offset)
        var damage = SegmentDamage(offset: offset, reason: "", isTornTail: false,
                                   nextValidOffset: next?.offset, nextValidIndex: next?.index)
        let tailAllowed = isLastSegment && next == nil
        if tailAllowed && raw.count - offset >= RecordFrame.headerSize && recordSigns(raw, at: offset) <= 1 {
            damage.reason = "stray bytes after the last record (no record starts here)"
            damage.isTornTail = true
            damage.isFreeSpace = true
            return damage
        }
        switch decoded {
        case .record: break
        case .incomplete:
            damage.reason = "record cut short by the end of the file"
            damage.isTornTail = tailAllowed
        case .zeroHeader:
            damage.reason = "zeroed record header"
            damage.isTornTail = tailAllowed && allZero(raw, from: offset)
        case .checksumMismatch(let end):
            damage.reason = "checksum mismatch"
            damage.isTornTail = tailAllowed && allZero(raw, from: end) && hasZeroedSector(raw, from: offset, to: end)
            damage.isSingleRecord = next?.offset == end
        case .malformed(let why):
            damage.reason = "malformed record (\(why))"
            damage.isSingleRecord = next?.offset == frameEnd(raw, at: offset)
        }
        return damage
    }

    /// Where the record at `offset` ends according to its length field.
    private static func frameEnd(_ raw: UnsafeRawBufferPointer, at offset: Int) -> Int {
        offset + RecordFrame.headerSize + Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
    }

    /// `true` when the bytes from a sector boundary inside `(start, end)` to `end` are zero.
    private static func hasZeroedSector(_ raw: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Bool {
        var boundary = (start / sectorSize + 1) * sectorSize
        while boundary < end {
            if allZero(raw, from: boundary, to: end) { return true }
            boundary += sectorSize
        }
        return false
    }

    static func allZero(_ raw: UnsafeRawBufferPointer, from start: Int, to end: Int? = nil) -> Bool {
        let stop = end ?? raw.count
        var i = start
        while i < stop {
            if raw[i] != 0 { return false }
            i += 1
        }
        return true
    }

    /// The first offset after `offset` at which a valid record starts, and the index of
    /// the first entry from there on. Cheap header checks filter candidates before the
    /// checksum is computed.
    static func nextValidRecord(_ raw: UnsafeRawBufferPointer, after offset: Int) -> (offset: Int, index: LogIndex?)? {
        var p = offset + 1
        while p + RecordFrame.headerSize <= raw.count {
            let type = raw[p + 8]
            let length = Int(raw.loadUnaligned(fromByteOffset: p, as: UInt32.self).littleEndian)
            if type <= RecordType.compact.rawValue, length >= 16,
               length <= raw.count - p - RecordFrame.headerSize,
               case .record = RecordFrame.decode(raw, at: p) {
                return (p, firstEntryIndex(raw, from: p))
            }
            p += 1
        }
        return nil
    }

    private static func firstEntryIndex(_ raw: UnsafeRawBufferPointer, from start: Int) -> LogIndex? {
        var offset = start
        while case let .record(record, end) = RecordFrame.decode(raw, at: offset) {
            if case .entry(let entry) = record { return entry.index }
            offset = end
        }
        return nil
    }
}
