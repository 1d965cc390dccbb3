import AegisRaft
import Foundation

/// Snapshot files: `snap-<index>-<term>.snap` (16 hex digits each), written to a
/// temporary name, fsynced, renamed and the directory fsynced.
///
/// Layout (little-endian): magic `"AEGS"` u32, version u16, index u64, term u64,
/// configuration, data length u64, data, then the CRC-32C of everything before it (u32).
enum SnapshotFile {
    static let magic: UInt32 = 0x5347_4541

    static func fileName(index: LogIndex, term: Term) -> String {
        "snap-\(hex16(index))-\(hex16(term)).snap"
    }

    /// Parses a snapshot file name into its index and term.
    static func parse(_ fileName: String) -> (index: LogIndex, term: Term)? {
        guard fileName.hasPrefix("snap-"), fileName.hasSuffix(".snap") else { return nil }
        let parts = fileName.dropFirst(5).dropLast(5).split(separator: "-")
        guard parts.count == 2, parts[0].count == 16, parts[1].count == 16,
              let index = UInt64(parts[0], radix: 16), let term = UInt64(parts[1], radix: 16) else { return nil }
        return (index, term)
    }

    /// The bytes before the data: everything up to and including the data length.
    static func header(_ metadata: SnapshotMetadata, dataCount: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE(magic)
        bytes.appendLE(RecordFrame.version)
        bytes.appendLE(metadata.index)
        bytes.appendLE(metadata.term)
        bytes.appendConf(metadata.confState)
        bytes.appendLE(UInt64(dataCount))
        return bytes
    }

    /// Decodes the header at the start of `raw` (which may hold more of the file, or
    /// only part of it): the metadata, where the data starts and its announced length.
    /// The one decoder of the header for every reader of snapshot files.
    static func decodeHeader(_ raw: UnsafeRawBufferPointer)
        -> Result<(metadata: SnapshotMetadata, dataStart: Int, dataCount: UInt64), DecodeError> {
        var r = ByteReader(raw, from: 0, to: raw.count)
        do throws(DecodeError) {
            if try r.u32("magic") != magic { throw DecodeError(reason: "bad magic") }
            let version = try r.u16("version")
            if version != RecordFrame.version { throw DecodeError(reason: "unsupported version \(version)") }
            let index = try r.u64("index"), term = try r.u64("term")
            let conf = try r.conf()
            let count = try r.u64("data length")
            return .success((SnapshotMetadata(index: index, term: term, confState: conf), r.position, count))
        } catch {
            return .failure(error)
        }
    }

    /// `decodeHeader`, checked against the file it starts: the data and the checksum
    /// must fill the file's `fileBytes` exactly, and the index and term must be what
    /// its name says. What is wrong is the reason of the failure.
    static func decodeHeader(_ raw: UnsafeRawBufferPointer, fileBytes: Int, index: LogIndex, term: Term)
        -> Result<(metadata: SnapshotMetadata, dataStart: Int), DecodeError> {
        decodeHeader(raw).flatMap { header in
            guard header.dataStart <= fileBytes - 4, header.dataCount == UInt64(fileBytes - 4 - header.dataStart) else {
                return .failure(DecodeError(reason: "data length \(header.dataCount) does not match the file"))
            }
            guard header.metadata.index == index && header.metadata.term == term else {
                return .failure(DecodeError(reason: "holds index \(header.metadata.index) term \(header.metadata.term), "
                    + "not what its name says"))
            }
            return .success((header.metadata, header.dataStart))
        }
    }

    /// Whether the snapshot `metadata` describes has a file to read: every snapshot past
    /// index 0 does; at index 0 only a bootstrap snapshot (its configuration) has one.
    static func isStored(_ metadata: SnapshotMetadata, directory: String, fileSystem: any FileSystem) -> Bool {
        metadata.index > 0 || fileSystem.exists(directory + "/" + fileName(index: metadata.index, term: metadata.term))
    }

    /// Writes `snapshot` durably into `directory`.
    static func write(_ snapshot: Snapshot, directory: String, fileSystem: any FileSystem) throws(StorageError) {
        try write(snapshot.metadata, dataCount: snapshot.data.count, chunks: CollectionOfOne(snapshot.data),
                  directory: directory, fileSystem: fileSystem)
    }

    /// Writes a snapshot durably into `directory` from its data in `chunks`, which must
    /// add up to `dataCount` bytes (checked: a mismatch leaves no file and throws
    /// `invalidArgument`). Only one chunk is in memory at a time.
    static func write<Chunks: Sequence<[UInt8]>>(_ metadata: SnapshotMetadata, dataCount: Int, chunks: Chunks,
                                                 directory: String, fileSystem: any FileSystem,
                                                 pacer: WritebackPacer = WritebackPacer()) throws(StorageError) {
        let path = directory + "/" + fileName(index: metadata.index, term: metadata.term)
        let head = header(metadata, dataCount: dataCount)
        let (total, overflow) = head.count.addingReportingOverflow(dataCount)
        guard dataCount >= 0, !overflow, total <= Int.max - 4 else {
            throw .invalidArgument("snapshot data length \(dataCount) is out of range")
        }
        try fileSystem.writeDurably(to: path, directory: directory, byteCount: total + 4) { (fd, temporary) throws(StorageError) in
            var crc = CRC32C()
            crc.update(head)
            try fileSystem.writeAll(fd, head, at: 0, path: temporary)
            var offset = head.count
            var pacer = pacer
            for chunk in chunks {
                guard chunk.count <= total - offset else {
                    throw .invalidArgument("snapshot data is longer than the \(dataCount) bytes announced")
                }
                crc.update(chunk)
                try fileSystem.writeAll(fd, chunk, at: offset, path: temporary)
                offset += chunk.count
                try pacer.wrote(upTo: offset, fd: fd, path: temporary, fileSystem: fileSystem)
            }
            guard offset == total else {
                throw .invalidArgument("snapshot data has \(offset - head.count) bytes, not the \(dataCount) announced")
            }
            var trailer: [UInt8] = []
            trailer.appendLE(crc.value)
            try fileSystem.writeAll(fd, trailer, at: offset, path: temporary)
        }
    }

    /// Reads and verifies the snapshot at `index`/`term` in `directory`.
    static func read(directory: String, index: LogIndex, term: Term,
                     fileSystem: any FileSystem = PosixFileSystem()) throws(StorageError) -> Snapshot {
        let path = directory + "/" + fileName(index: index, term: term)
        func damaged(_ why: String, _ offset: Int = 0) -> StorageError {
            .corruption(CorruptionReport(file: path, offset: offset, firstLostIndex: 1, lastLostIndex: index,
                                         reason: "snapshot file \(why)"))
        }
        var bytes: [UInt8]
        do { bytes = try fileSystem.readAll(path) } catch { throw damaged("cannot be read (\(error))") }
        if bytes.count < 4 { throw damaged("is truncated") }
        let body = bytes.count - 4
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: body, as: UInt32.self).littleEndian }
        let actual = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<body])) }
        if stored != actual { throw damaged("checksum mismatch") }
        // Decodes the header; the data stays in `bytes` (it can be as large as the state:
        // it is cut out in place below rather than copied).
        let decoded = bytes.withUnsafeBytes { raw in
            decodeHeader(UnsafeRawBufferPointer(rebasing: raw[..<body]), fileBytes: bytes.count, index: index, term: term)
        }
        switch decoded {
        case .success(let (metadata, dataStart)):
            bytes.removeSubrange(body...)
            bytes.removeSubrange(..<dataStart)
            return Snapshot(metadata: metadata, data: bytes)
        case .failure(let error):
            throw damaged("is malformed (\(error.reason))")
        }
    }

    /// A read of a snapshot file running on another thread.
    final class BackgroundRead: @unchecked Sendable {
        let index: LogIndex
        let term: Term
        private let done = DispatchSemaphore(value: 0)
        /// Written once by the reading thread before `done` is signalled.
        private var result: Result<Snapshot, StorageError>?
        /// What the preparer made of the snapshot; written before `done` is signalled.
        private(set) var prepared: (any Sendable)?
        /// `false` when the data was streamed to a preparer and not kept: the result's
        /// snapshot then holds the metadata only.
        private(set) var dataKept = true

        init(index: LogIndex, term: Term) {
            self.index = index
            self.term = term
        }

        func finish(_ value: Result<Snapshot, StorageError>, prepared: (any Sendable)? = nil, dataKept: Bool = true) {
            result = value
            self.prepared = prepared
            self.dataKept = dataKept
            done.signal()
        }

        /// Waits for the read: the file's index and term, and what reading it gave.
        func wait() -> (LogIndex, Term, Result<Snapshot, StorageError>) {
            done.wait()
            done.signal()  // later waits return at once
            return (index, term, result ?? .failure(.invalidArgument("snapshot read did not finish")))
        }

        /// What reading gave, or `nil` while it runs.
        func poll() -> Result<Snapshot, StorageError>? {
            guard done.wait(timeout: .now()) == .success else { return nil }
            done.signal()
            return result
        }
    }

    /// Starts reading (and verifying) the snapshot at `index`/`term` on another thread.
    /// With `prepare`, the data is streamed to the preparation it makes
    /// (`stream(directory:index:term:chunkBytes:prepare:)`) and not kept.
    static func readInBackground(directory: String, index: LogIndex, term: Term, fileSystem: any FileSystem,
                                 prepare: (@Sendable (SnapshotMetadata) -> any SnapshotPreparation)? = nil) -> BackgroundRead {
        let read = BackgroundRead(index: index, term: term)
        Thread.detachNewThread {
            if let prepare {
                do throws(StorageError) {
                    let (metadata, prepared) = try SnapshotFile.stream(
                        directory: directory, index: index, term: term,
                        faults: (fileSystem as? PosixFileSystem)?.faults, prepare: prepare)
                    read.finish(.success(Snapshot(metadata: metadata)), prepared: prepared, dataKept: false)
                } catch {
                    read.finish(.failure(error), dataKept: false)
                }
                return
            }
            let result = Result { () throws(StorageError) in
                try SnapshotFile.read(directory: directory, index: index, term: term, fileSystem: fileSystem)
            }
            read.finish(result)
        }
        return read
    }

    /// Starts reading (and verifying) the newest snapshot file in `directory` on another
    /// thread; `nil` if there is none.
    static func readNewestInBackground(directory: String, fileSystem: any FileSystem,
                                       prepare: (@Sendable (SnapshotMetadata) -> any SnapshotPreparation)? = nil)
        -> BackgroundRead? {
        guard let names = try? fileSystem.list(directory),
              let newest = names.compactMap(parse).max(by: { ($0.index, $0.term) < ($1.index, $1.term) }) else { return nil }
        return readInBackground(directory: directory, index: newest.index, term: newest.term, fileSystem: fileSystem,
                                prepare: prepare)
    }

    /// Deletes all but the `retain` newest snapshot files, and never `keep`.
    static func prune(directory: String, retain: Int, keep: LogIndex,
                      fileSystem: any FileSystem) throws(StorageError) {
        let snapshots = try fileSystem.list(directory).compactMap { name in parse(name).map { (name, $0.index) } }
            .sorted { $0.1 > $1.1 }
        var removed = false
        for (name, index) in snapshots.dropFirst(max(retain, 1)) where index != keep {
            try fileSystem.remove(directory + "/" + name)
            removed = true
        }
        if removed { try fileSystem.syncDirectory(directory) }
    }
}

/// Keeps a large file being written from piling up dirty pages: every `windowBytes`
/// written, it starts write-back of that window (`FileSystem.startWriteback`), and
/// every `syncBytes` it waits for what is written so far (`dataSync`), so at most about
/// `syncBytes` are dirty at once. Without it a snapshot of a large state (hundreds of
/// megabytes) was flushed by its final `fsync` all at once, and the write-ahead log's
/// `fdatasync`s on the same disk waited behind it: on a leader, for longer than an
/// election timeout.
struct WritebackPacer {
    /// Write-back starts for every window of this many bytes (8 MiB).
    let windowBytes: Int
    /// The writer waits for the disk every this many bytes (64 MiB).
    let syncBytes: Int

    private var windowStart = 0
    private var syncedTo = 0

    init(windowBytes: Int = 8 << 20, syncBytes: Int = 64 << 20) {
        self.windowBytes = max(1, windowBytes)
        self.syncBytes = max(self.windowBytes, syncBytes)
    }

    /// Call after writing everything before `offset`.
    mutating func wrote(upTo offset: Int, fd: Int32, path: String, fileSystem: any FileSystem) throws(StorageError) {
        guard offset - windowStart >= windowBytes else { return }
        fileSystem.startWriteback(fd, from: windowStart, to: offset)
        windowStart = offset
        guard offset - syncedTo >= syncBytes else { return }
        try fileSystem.dataSync(fd, path: path)
        syncedTo = offset
    }
}
