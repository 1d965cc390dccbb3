// Fuzz target: the snapshot file readers (`SnapshotFile.read`, and `SnapshotFile.stream`
// checked against it), fed arbitrary files.
//
// The first input byte picks the mode: bit 0 set makes the harness overwrite the
// last four bytes with the correct CRC-32C, so that the fuzzer gets past the checksum
// to the decoder. The file is named after the index and term it claims (bytes 6..<22,
// little-endian) when it is long enough, so that the name check passes too; bit 1
// names it `snap-0…0-0…0` instead. A thrown `StorageError` is fine; a trap or an
// ASan report is a bug.
internal import AegisRaft
internal import FuzzSupport
@testable internal import AegisStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let workDirectory = fuzzWorkDirectory("snapshot")

/// Takes every data byte it is given (checks what the streamed reader hands over).
private struct Collecting: SnapshotPreparation {
    var bytes: [UInt8] = []
    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws -> Int {
        bytes.append(contentsOf: chunk)
        return chunk.count
    }
    mutating func finish() -> (any Sendable)? { bytes }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    var file = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if mode & 1 != 0 && file.count >= 4 {
        let body = file.count - 4
        let crc = file.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<body])) }
        file.storeLE(crc, at: body)
    }
    var index: LogIndex = 0, term: Term = 0
    if mode & 2 == 0 && file.count >= 22 {
        file.withUnsafeBytes { raw in
            index = raw.loadUnaligned(fromByteOffset: 6, as: UInt64.self).littleEndian
            term = raw.loadUnaligned(fromByteOffset: 14, as: UInt64.self).littleEndian
        }
    }
    let path = workDirectory + "/" + SnapshotFile.fileName(index: index, term: term)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { fatalError("cannot create \(path)") }
    file.withUnsafeBytes { raw in _ = write(fd, raw.baseAddress, raw.count) }
    close(fd)
    defer { unlink(path) }

    let whole = try? SnapshotFile.read(directory: workDirectory, index: index, term: term)
    // The streamed reader (a restart's, `SnapshotFile.stream`) accepts exactly what the
    // whole-file reader accepts and hands over exactly its data, whatever the chunk
    // size (the mode's upper bits pick it, down to 1 byte: the buffer then grows).
    let streamed = try? SnapshotFile.stream(directory: workDirectory, index: index, term: term,
                                            chunkBytes: 1 + Int(mode >> 2) * 5) { _ in Collecting() }
    precondition((whole == nil) == (streamed == nil), "the streamed and the whole-file reader disagree on accepting")
    if let whole, let streamed {
        precondition(streamed.metadata == whole.metadata, "the streamed reader decoded other metadata")
        precondition(streamed.prepared as? [UInt8] == whole.data, "the streamed reader handed over other data")
    }
    guard let snapshot = whole else { return 0 }
    // What was read must be what a writer would have written: writing it again and
    // reading that back gives the same snapshot. (Not the same bytes: names that are
    // not valid UTF-8 are read with replacement characters, duplicates collapse.)
    precondition(snapshot.metadata.index == index && snapshot.metadata.term == term, "snapshot name check skipped")
    // Written by the real writer (streaming, with its own checks) into a simulated file
    // system, so no fsync per input.
    let again: [UInt8]
    do {
        let memory = SimulatedFileSystem()
        try memory.makeDirectory("/s")
        try SnapshotFile.write(snapshot, directory: "/s", fileSystem: memory)
        again = try memory.readAll("/s/" + SnapshotFile.fileName(index: index, term: term))
    } catch {
        fatalError("SnapshotFile.write refused a snapshot SnapshotFile.read accepted: \(error)")
    }
    let fd2 = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd2 >= 0 else { fatalError("cannot create \(path)") }
    again.withUnsafeBytes { raw in _ = write(fd2, raw.baseAddress, raw.count) }
    close(fd2)
    let reread: Snapshot
    do { reread = try SnapshotFile.read(directory: workDirectory, index: index, term: term) } catch {
        fatalError("a snapshot written by SnapshotFile.write does not read back: \(error)")
    }
    precondition(reread == snapshot, "snapshot round trip changed it")
    return 0
}
