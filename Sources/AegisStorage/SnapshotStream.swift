public import AegisRaft
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something built from a stored snapshot's data while the storage opens
/// (`DiskStorageOptions.snapshotPreparer`): the data is handed over a chunk at a time
/// as the file is read, so a snapshot as large as the state is never in memory whole.
public protocol SnapshotPreparation {
    /// Takes the data that follows what was consumed so far and returns how many of
    /// these bytes it consumed. The bytes it left are passed again at the start of the
    /// next call, followed by the next ones, so it may stop anywhere (for example before
    /// an incomplete record). Throwing abandons the preparation; the storage still reads
    /// and verifies the file.
    mutating func consume(_ bytes: UnsafeRawBufferPointer) throws -> Int

    /// Called once, before the first `consume(_:)`, with the length of the data (from
    /// the file's size). The default does nothing.
    mutating func expect(dataBytes: Int)

    /// Called once every data byte was consumed and the file's checksum matched (never
    /// on unverified data); the result is what `DiskStorage.takePreparedSnapshot()`
    /// hands out.
    mutating func finish() -> (any Sendable)?
}

extension SnapshotPreparation {
    public mutating func expect(dataBytes: Int) {}
}

extension SnapshotFile {
    /// The bytes read from a snapshot file at a time when it is streamed (8 MiB). The
    /// buffer grows past this when a single record of the data is larger (and stays at
    /// that size until the end of the file).
    static let streamChunkBytes = 8 << 20

    /// Reads and verifies the snapshot at `index`/`term` in `directory` (the real file
    /// system), handing its data to the preparation `prepare` makes, chunk by chunk,
    /// instead of keeping it: memory holds one chunk of the file, not the file.
    ///
    /// Returns the snapshot's metadata and what the preparation made: `nil` if it threw,
    /// left data unconsumed at the end, or finished with `nil`; it is finished only once
    /// the file's checksum matched. Throws `StorageError.corruption` as
    /// `read(directory:index:term:fileSystem:)` does, for a file that is damaged (its
    /// checksum, header or length) or cannot be read; the preparation's work is then
    /// dropped. `faults` (a test hook) can fail its open and reads.
    static func stream(directory: String, index: LogIndex, term: Term, chunkBytes: Int = streamChunkBytes,
                       faults: FaultInjector? = nil,
                       prepare: (SnapshotMetadata) -> any SnapshotPreparation) throws(StorageError)
        -> (metadata: SnapshotMetadata, prepared: (any Sendable)?) {
        let path = directory + "/" + fileName(index: index, term: term)
        func damaged(_ why: String) -> StorageError {
            .corruption(CorruptionReport(file: path, offset: 0, firstLostIndex: 1, lastLostIndex: index,
                                         reason: "snapshot file \(why)"))
        }
        let fd: Int32
        do { fd = try FileIO.open(path, O_RDONLY, faults) } catch { throw damaged("cannot be read (\(error))") }
        defer { _ = closeFile(fd) }
        var size = stat()
        guard fstat(fd, &size) == 0 else { throw damaged("cannot be read (fstat: errno \(errno))") }
        let fileBytes = Int(size.st_size)
        guard fileBytes >= 4 else { throw damaged("is truncated") }

        // The header (at most `SnapshotDataFile.maxHeaderBytes`: its configuration has a
        // variable length), then the data through a buffer of `chunkBytes`.
        let head = UnsafeMutableRawBufferPointer.allocate(byteCount: min(fileBytes - 4, SnapshotDataFile.maxHeaderBytes),
                                                          alignment: 16)
        defer { head.deallocate() }
        let headRead: Int
        do { headRead = try FileIO.read(fd, into: head, at: 0, path: path) } catch { throw damaged("cannot be read (\(error))") }
        let header: (metadata: SnapshotMetadata, dataStart: Int)
        switch SnapshotFile.decodeHeader(UnsafeRawBufferPointer(rebasing: head[..<headRead]), fileBytes: fileBytes,
                                         index: index, term: term) {
        case .success(let value): header = value
        case .failure(let error): throw damaged("is malformed (\(error.reason))")
        }
        var crc = CRC32C()
        crc.update(UnsafeRawBufferPointer(rebasing: head[..<header.dataStart]))

        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(chunkBytes, 1), alignment: 16)
        defer { buffer.deallocate() }
        var preparation = try feed(prepare(header.metadata), fd: fd, path: path, from: header.dataStart,
                                   to: fileBytes - 4, buffer: &buffer, crc: &crc, faults: faults, damaged: damaged)
        var trailer: UInt32 = 0
        let got = try withUnsafeMutableBytes(of: &trailer) { raw throws(StorageError) in
            do {
                return try FileIO.read(fd, into: raw, at: fileBytes - 4, path: path)
            } catch {
                throw damaged("cannot be read (\(error))")
            }
        }
        guard got == 4 else { throw damaged("is truncated") }
        guard UInt32(littleEndian: trailer) == crc.value else { throw damaged("checksum mismatch") }
        // Only verified data is finished.
        return (header.metadata, preparation?.finish())
    }

    /// Reads the data bytes `start..<end` of `fd` through `buffer` (grown when a record
    /// does not fit), adding them to `crc` and handing them to `preparation`; returns the
    /// preparation if it took every byte, `nil` if it gave up (it is released at once,
    /// with what it built, and the rest is read for the checksum only).
    private static func feed<Preparation: SnapshotPreparation>(
        _ preparation: Preparation, fd: Int32, path: String, from start: Int, to end: Int,
        buffer: inout UnsafeMutableRawBufferPointer, crc: inout CRC32C, faults: FaultInjector?,
        damaged: (String) -> StorageError) throws(StorageError) -> Preparation? {
        var live: Preparation? = preparation
        live?.expect(dataBytes: end - start)
        var kept = 0  // bytes at the start of `buffer` the preparation left
        var offset = start
        while offset < end {
            if kept == buffer.count {
                // One record is larger than the buffer: double it (bounded by the data).
                let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: min(buffer.count * 2, kept + end - offset),
                                                                   alignment: 16)
                grown.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[..<kept]))
                buffer.deallocate()
                buffer = grown
            }
            let want = min(buffer.count - kept, end - offset)
            let got: Int
            do {
                if let code = faults?("read", path) { throw StorageError.io(operation: "read", path: path, errno: code) }
                got = try FileIO.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[kept ..< kept + want]),
                                      at: offset, path: path)
            } catch {
                throw damaged("cannot be read (\(error))")
            }
            guard got == want else { throw damaged("is truncated") }
            crc.update(UnsafeRawBufferPointer(rebasing: buffer[kept ..< kept + got]))
            offset += got
            kept += got
            guard live != nil else {
                kept = 0
                continue
            }
            do {
                let consumed = try live?.consume(UnsafeRawBufferPointer(rebasing: buffer[..<kept])) ?? 0
                guard consumed >= 0 && consumed <= kept else {
                    live = nil
                    kept = 0
                    continue
                }
                if consumed > 0, let base = buffer.baseAddress {
                    memmove(base, base + consumed, kept - consumed)
                    kept -= consumed
                }
            } catch {
                live = nil
                kept = 0
            }
        }
        return kept == 0 ? live : nil
    }
}
