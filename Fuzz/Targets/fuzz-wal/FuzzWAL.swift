// Fuzz target: the write-ahead log's record scanner and crash recovery, fed arbitrary
// segment files (an operator's bad disk, a torn or corrupted write).
//
// The first input byte picks the mode:
// - bit 0 clear, "raw": the rest of the input is a segment file, as is.
// - bit 0 set, "framed": the rest is a list of records, each `type u8, length u8,
//   payload`, that the harness frames with a correct length and checksum after a
//   valid segment header, so that the fuzzer reaches the record decoders and the
//   replay instead of failing on checksums. A type byte >= 0xF0 inserts its payload
//   unframed (damage); 0xEF starts a second segment file.
// Bit 1 makes the (first) file a segment before the last one rather than the last.
//
// Each input goes through the scanner in memory (as the last segment and as an
// earlier one), then through `DiskStorage.init` on a directory holding the file(s):
// recovery, the snapshot file check and the segment writer's restart. If the
// storage opens, the harness reads the log back and appends one entry. A thrown
// `StorageError` is fine; a trap or an ASan report is a bug.
internal import AegisRaft
internal import FuzzSupport
@testable internal import AegisStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let workDirectory = fuzzWorkDirectory("wal")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let files = mode & 1 == 0 ? [body] : framedSegments(body)

    for (k, file) in files.enumerated() {
        let lastScan = SegmentScanner.scan(file, isLastSegment: true)
        checkScan(lastScan, size: file.count)
        let earlierScan = SegmentScanner.scan(file, isLastSegment: k + 1 < files.count || mode & 2 != 0)
        checkScan(earlierScan, size: file.count)
    }

    // Recovery on real files. Names follow the headers when they decode.
    clearDirectory(workDirectory)
    var sequence: UInt64 = 1
    for file in files {
        var name = SegmentName(sequence: sequence, firstIndex: 1)
        if case .record(.segmentHeader(let s, let first), _) = file.withUnsafeBytes({ RecordFrame.decode($0, at: 0) }) {
            name = SegmentName(sequence: s, firstIndex: first)
        }
        if mode & 2 != 0 && sequence == 1 {
            // An earlier segment: a later, empty-but-valid one follows it.
            var next: [UInt8] = []
            RecordFrame.appendSegmentHeader(sequence: name.sequence &+ 1, firstIndex: name.firstIndex, to: &next)
            writeFile(workDirectory + "/" + SegmentName(sequence: name.sequence &+ 1, firstIndex: name.firstIndex).fileName,
                      next)
        }
        writeFile(workDirectory + "/" + name.fileName, file)
        sequence = name.sequence &+ 1
    }
    openAndUse(workDirectory)
    return 0
}

/// What the scanner returns is consistent with the bytes it was given.
private func checkScan(_ scan: SegmentScan, size: Int) {
    precondition(scan.validEnd >= 0 && scan.validEnd <= size, "validEnd \(scan.validEnd) outside a file of \(size) bytes")
    var previous = -1
    for record in scan.records {
        precondition(record.offset > previous && record.offset < size, "record offsets out of order")
        previous = record.offset
    }
    for damage in scan.damages {
        precondition(damage.offset >= 0 && damage.offset < size, "damage offset \(damage.offset) outside the file")
        if let next = damage.nextValidOffset { precondition(next > damage.offset && next < size, "next valid offset") }
    }
}

/// Opens a `DiskStorage` on `directory`; if it opens, reads the log and appends.
private func openAndUse(_ directory: String) {
    var options = DiskStorageOptions(segmentSize: 4096)
    options.preallocateSegments = false
    // No writer thread per input: the same recovery and write path, on this thread.
    options.writerThread = false
    let storage: DiskStorage
    do { storage = try DiskStorage(directory: directory, options: options) } catch { return }
    defer { storage.close() }
    do {
        let first = try storage.firstIndex(), last = try storage.lastIndex()
        let report = storage.recovery
        precondition(report.lastIndex == last, "recovery report and storage disagree on the last index")
        if last >= first {
            let low = max(first, last &- 8)
            let entries = try storage.entries(from: low, to: last &+ 1, maxBytes: 1 << 20)
            for (k, entry) in entries.enumerated() {
                precondition(entry.index == low + UInt64(k), "entries out of order after recovery")
            }
        }
        let term = try storage.term(at: last)
        guard last < UInt64.max else { return }
        let state = try storage.initialState().state
        try storage.save(hardState: nil, entries: [LogEntry(index: last + 1, term: max(term, state.term), data: [1, 2, 3])],
                         sync: true)
        let newLast = try storage.lastIndex()
        precondition(newLast == last + 1, "an append after recovery was lost")
    } catch {
        // Refused: fine.
    }
}

/// Builds one or two segment files from the framed-mode script.
private func framedSegments(_ script: [UInt8]) -> [[UInt8]] {
    var files: [[UInt8]] = []
    var current: [UInt8] = []
    var sequence: UInt64 = 1
    var firstIndex: LogIndex = 1
    var position = 0
    func byte() -> UInt8? {
        guard position < script.count else { return nil }
        defer { position += 1 }
        return script[position]
    }
    if let start = byte() { firstIndex = LogIndex(start % 8) + 1 }
    RecordFrame.appendSegmentHeader(sequence: sequence, firstIndex: firstIndex, to: &current)
    while let type = byte() {
        let length = Int(byte() ?? 0)
        let end = min(position + length, script.count)
        let payload = Array(script[position..<end])
        position = end
        switch type {
        case 0xEF where files.isEmpty:
            files.append(current)
            current = []
            sequence += 1
            firstIndex = payload.first.map { LogIndex($0) } ?? firstIndex
            RecordFrame.appendSegmentHeader(sequence: sequence, firstIndex: firstIndex, to: &current)
        case 0xF0...:
            current.append(contentsOf: payload)
        default:
            appendFramed(type: type % 8, payload: payload, to: &current)
        }
    }
    files.append(current)
    return files
}

/// A record frame with a correct length and checksum around any type and payload.
private func appendFramed(type: UInt8, payload: [UInt8], to buffer: inout [UInt8]) {
    let start = buffer.count
    RecordFrame.append(.compact, to: &buffer) { $0.append(contentsOf: payload) }
    guard type != RecordType.compact.rawValue else { return }
    // Re-type the record and fix its checksum (CRC-32C of length, type and payload).
    buffer[start + 8] = type
    let crc = buffer.withUnsafeBytes { raw in
        let lengthCRC = CRC32C.update(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: raw[start..<(start + 4)]))
        return ~CRC32C.update(lengthCRC, UnsafeRawBufferPointer(rebasing: raw[(start + 8)...]))
    }
    buffer.storeLE(crc, at: start + 4)
}

private func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { fatalError("cannot create \(path)") }
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { break }
            done += n
        }
    }
    close(fd)
}

private func clearDirectory(_ path: String) {
    guard let dir = opendir(path) else { return }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if name != "." && name != ".." { unlink(path + "/" + name) }
    }
}
