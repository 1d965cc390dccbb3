import AegisRaft

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

    static func encode(_ snapshot: Snapshot) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(snapshot.data.count + 128)
        bytes.appendLE(magic)
        bytes.appendLE(RecordFrame.version)
        bytes.appendLE(snapshot.metadata.index)
        bytes.appendLE(snapshot.metadata.term)
        bytes.appendConf(snapshot.metadata.confState)
        bytes.appendLE(UInt64(snapshot.data.count))
        bytes.append(contentsOf: snapshot.data)
        bytes.appendLE(CRC32C.checksum(bytes))
        return bytes
    }

    /// Writes `snapshot` durably into `directory`.
    static func write(_ snapshot: Snapshot, directory: String, fileSystem: any FileSystem) throws(StorageError) {
        let name = fileName(index: snapshot.metadata.index, term: snapshot.metadata.term)
        try fileSystem.writeDurably(encode(snapshot), to: directory + "/" + name, directory: directory)
    }

    /// Reads and verifies the snapshot at `index`/`term` in `directory`.
    static func read(directory: String, index: LogIndex, term: Term,
                     fileSystem: any FileSystem = PosixFileSystem()) throws(StorageError) -> Snapshot {
        let path = directory + "/" + fileName(index: index, term: term)
        func damaged(_ why: String, _ offset: Int = 0) -> StorageError {
            .corruption(CorruptionReport(file: path, offset: offset, firstLostIndex: 1, lastLostIndex: index,
                                         reason: "snapshot file \(why)"))
        }
        let bytes: [UInt8]
        do { bytes = try fileSystem.readAll(path) } catch { throw damaged("cannot be read (\(error))") }
        if bytes.count < 4 { throw damaged("is truncated") }
        let body = bytes.count - 4
        let stored = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: body, as: UInt32.self).littleEndian }
        let actual = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<body])) }
        if stored != actual { throw damaged("checksum mismatch") }
        let decoded: Result<Snapshot, DecodeError> = bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, from: 0, to: body)
            do throws(DecodeError) {
                if try r.u32("magic") != magic { throw DecodeError(reason: "bad magic") }
                let version = try r.u16("version")
                if version != RecordFrame.version { throw DecodeError(reason: "unsupported version \(version)") }
                let metaIndex = try r.u64("index"), metaTerm = try r.u64("term")
                let conf = try r.conf()
                let count = try r.u64("data length")
                if count != UInt64(r.remaining) { throw DecodeError(reason: "data length \(count) does not match the file") }
                let data = try r.bytes(Int(count), "data")
                return .success(Snapshot(metadata: SnapshotMetadata(index: metaIndex, term: metaTerm, confState: conf), data: data))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .success(let snapshot):
            if snapshot.metadata.index != index || snapshot.metadata.term != term {
                throw damaged("holds index \(snapshot.metadata.index) term \(snapshot.metadata.term), not what its name says")
            }
            return snapshot
        case .failure(let error):
            throw damaged("is malformed (\(error.reason))")
        }
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
