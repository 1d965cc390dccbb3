public import AegisRaft

/// One record of the write-ahead log, as the `WALReader` returns it.
public enum WALRecord: Sendable, Hashable {
    /// The first record of every segment file: its sequence number and the index of
    /// the first entry it holds (the same numbers as in the file name).
    case segmentHeader(sequence: UInt64, firstIndex: LogIndex)
    /// A log entry, with the proposing leader's timestamp.
    case entry(LogEntry)
    /// The hard state (term, vote, commit index) from this point on.
    case hardState(RaftState)
    /// A snapshot at `metadata.index` is stored in a snapshot file. When `resetsLog` is
    /// true (a snapshot received from the leader) every earlier entry is discarded and
    /// the log continues at `metadata.index + 1`.
    case snapshot(SnapshotMetadata, resetsLog: Bool)
    /// Entries before `index` are discarded; the entry at `index` (whose term is
    /// `term`) stays known only by its term.
    case compact(index: LogIndex, term: Term)
}

/// The on-disk record types (the byte after the checksum).
enum RecordType: UInt8 {
    case segmentHeader = 0
    case entry = 1
    case hardState = 2
    case snapshot = 3
    case compact = 4
}

/// Record framing: `length: u32 LE` (payload bytes), `crc: u32 LE` (CRC-32C of the
/// length bytes, the type byte and the payload), `type: u8`, `payload`.
enum RecordFrame {
    /// Bytes before the payload.
    static let headerSize = 9
    /// The largest payload a record may declare; anything larger is damage.
    static let maxPayload = 1 << 30
    /// The smallest payload of a record after a segment header (a compaction record).
    static let minimumPayload: UInt32 = 16
    /// The magic number in a segment header payload ("AEGW").
    static let segmentMagic: UInt32 = 0x5747_4541
    /// The format version in segment headers and snapshot files.
    static let version: UInt16 = 1

    /// Appends one framed record whose payload `body` writes.
    @inline(__always)
    static func append(_ type: RecordType, to buffer: inout [UInt8], body: (inout [UInt8]) -> Void) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: headerSize))
        body(&buffer)
        let length = UInt32(buffer.count - start - headerSize)
        buffer.storeLE(length, at: start)
        buffer[start + 8] = type.rawValue
        let crc = buffer.withUnsafeBytes { raw in
            let lengthCRC = CRC32C.update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: raw[start..<(start + 4)]))
            return ~CRC32C.update(lengthCRC, UnsafeRawBufferPointer(rebasing: raw[(start + 8)...]))
        }
        buffer.storeLE(crc, at: start + 4)
    }

    static func appendEntry(_ entry: LogEntry, to buffer: inout [UInt8]) {
        append(.entry, to: &buffer) { b in
            b.appendLE(entry.index)
            b.appendLE(entry.term)
            b.appendLE(entry.timestamp)
            b.append(entry.type.rawValue)
            b.append(contentsOf: entry.data)
        }
    }

    static func appendHardState(_ state: RaftState, to buffer: inout [UInt8]) {
        append(.hardState, to: &buffer) { b in
            b.appendLE(state.term)
            b.appendLE(state.commitIndex)
            if let vote = state.votedFor {
                b.append(1)
                b.appendString(vote.rawValue)
            } else {
                b.append(0)
            }
        }
    }

    static func appendSnapshot(_ metadata: SnapshotMetadata, resetsLog: Bool, to buffer: inout [UInt8]) {
        append(.snapshot, to: &buffer) { b in
            b.appendLE(metadata.index)
            b.appendLE(metadata.term)
            b.append(resetsLog ? 1 : 0)
            b.appendConf(metadata.confState)
        }
    }

    static func appendCompact(index: LogIndex, term: Term, to buffer: inout [UInt8]) {
        append(.compact, to: &buffer) { b in
            b.appendLE(index)
            b.appendLE(term)
        }
    }

    static func appendSegmentHeader(sequence: UInt64, firstIndex: LogIndex, to buffer: inout [UInt8]) {
        append(.segmentHeader, to: &buffer) { b in
            b.appendLE(segmentMagic)
            b.appendLE(version)
            b.appendLE(sequence)
            b.appendLE(firstIndex)
        }
    }

    /// What is found at one offset of a segment.
    enum Decoded {
        /// A valid record ending at `end`.
        case record(WALRecord, end: Int)
        /// The file ends inside the record's header or before its declared end.
        case incomplete
        /// The header declares no payload and no type: zeroed bytes.
        case zeroHeader
        /// The checksum does not match (the record is complete).
        case checksumMismatch(end: Int)
        /// The checksum matches but the content is not a valid record.
        case malformed(String)
    }

    /// Decodes the record at `offset` of `bytes`.
    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Decoded {
        let available = bytes.count - offset
        if available < headerSize { return .incomplete }
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
        let stored = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self).littleEndian
        let typeByte = bytes[offset + 8]
        if length == 0 && stored == 0 && typeByte == 0 { return .zeroHeader }
        if length > maxPayload || length > available - headerSize { return .incomplete }
        let end = offset + headerSize + length
        let lengthCRC = CRC32C.update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 4)]))
        let crc = ~CRC32C.update(lengthCRC, UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<end]))
        if crc != stored { return .checksumMismatch(end: end) }
        do {
            let record = try decodePayload(typeByte, bytes, from: offset + headerSize, to: end)
            try checkRange(record)
            return .record(record, end: end)
        } catch {
            return .malformed(error.reason)
        }
    }

    /// The largest index, term or sequence number a record may hold (the wire's limit
    /// too): beyond any real log, and small enough that `index + 1` never overflows
    /// during recovery. A record with a larger one is malformed (found by fuzz-wal).
    static let maxIndexOrTerm: UInt64 = 1 << 62

    private static func checkRange(_ record: WALRecord) throws(DecodeError) {
        let largest: UInt64
        switch record {
        case let .segmentHeader(sequence, firstIndex): largest = max(sequence, firstIndex)
        case let .entry(entry):
            if entry.index == 0 { throw DecodeError(reason: "entry index 0") }  // the log starts at 1
            largest = max(entry.index, entry.term)
        case let .hardState(state): largest = max(state.term, state.commitIndex)
        case let .snapshot(metadata, _): largest = max(metadata.index, metadata.term)
        case let .compact(index, term): largest = max(index, term)
        }
        if largest > maxIndexOrTerm { throw DecodeError(reason: "index or term \(largest) is beyond 2^62") }
    }

    private static func decodePayload(_ typeByte: UInt8, _ bytes: UnsafeRawBufferPointer,
                                      from start: Int, to end: Int) throws(DecodeError) -> WALRecord {
        var r = ByteReader(bytes, from: start, to: end)
        guard let type = RecordType(rawValue: typeByte) else {
            throw DecodeError(reason: "unknown record type \(typeByte)")
        }
        switch type {
        case .segmentHeader:
            if try r.u32("magic") != segmentMagic { throw DecodeError(reason: "bad segment magic") }
            let version = try r.u16("version")
            if version != RecordFrame.version { throw DecodeError(reason: "unsupported segment version \(version)") }
            return .segmentHeader(sequence: try r.u64("sequence"), firstIndex: try r.u64("first index"))
        case .entry:
            let index = try r.u64("index"), term = try r.u64("term"), timestamp = try r.u64("timestamp")
            let rawType = try r.u8("entry type")
            guard let entryType = EntryType(rawValue: rawType) else {
                throw DecodeError(reason: "unknown entry type \(rawType) at index \(index)")
            }
            let data = try r.bytes(r.remaining, "data")
            return .entry(LogEntry(index: index, term: term, type: entryType, data: data, timestamp: timestamp))
        case .hardState:
            let term = try r.u64("term"), commit = try r.u64("commit index")
            let vote: NodeID? = try r.u8("vote flag") != 0 ? NodeID(try r.string("vote")) : nil
            return .hardState(RaftState(term: term, votedFor: vote, commitIndex: commit))
        case .snapshot:
            let index = try r.u64("index"), term = try r.u64("term")
            let resets = try r.u8("flags") & 1 != 0
            let conf = try r.conf()
            return .snapshot(SnapshotMetadata(index: index, term: term, confState: conf), resetsLog: resets)
        case .compact:
            return .compact(index: try r.u64("index"), term: try r.u64("term"))
        }
    }
}
