public import AegisRaft

// Snapshot format (version 1). Integers in the header and trailer are little-endian;
// the entry fields use the varints of the command encoding.
//
//     header   "AKVS" magic (4 bytes), format version (1 byte),
//              applied index (8), revision (8), key count (8)
//     entries  one per key, in strictly ascending key order:
//              key length + key, value length + value,
//              version, create revision, modify revision (varints)
//     trailer  CRC-32C (4 bytes) of every byte before it
//
// Keys are written in order, so the bytes are canonical: replicas with the same
// state produce identical snapshots, and `StateMachine.digest()` is the SHA-256 of
// them. The reader also rebuilds the ordered key index from that order for free.

/// The first bytes of every key-value snapshot.
let snapshotMagic: [UInt8] = Array("AKVS".utf8)
/// The snapshot format version written by this build.
let snapshotFormatVersion: UInt8 = 1
/// The size of the fixed header.
let snapshotHeaderSize = 4 + 1 + 8 + 8 + 8

/// Produces a state machine's snapshot as chunks of about `chunkSize` bytes, so the
/// caller can write or send each chunk without holding the whole snapshot in memory.
///
/// The writer holds a copy-on-write view of the state taken when it was made; later
/// writes to the state machine do not affect it.
public struct KVSnapshotWriter: Sequence, IteratorProtocol, Sendable {
    let entries: KVTable
    let keys: [Key]
    let appliedIndex: LogIndex
    let revision: UInt64
    let chunkSize: Int
    /// The next key to write; -1 before the header.
    var position = -1
    var crc = CRC32C()
    var finished = false

    init(entries: KVTable, keys: [Key], appliedIndex: LogIndex, revision: UInt64, chunkSize: Int) {
        self.entries = entries
        self.keys = keys
        self.appliedIndex = appliedIndex
        self.revision = revision
        self.chunkSize = Swift.max(chunkSize, 1)
    }

    /// The number of bytes the chunks add up to (header, entries and trailer), counted
    /// without encoding them: one pass over the keys. A storage that records the
    /// snapshot's length before its bytes (`DiskStorage`) streams the chunks with it.
    public var byteCount: Int {
        var total = snapshotHeaderSize + 4
        for key in keys {
            guard let index = entries.find(key) else { continue }  // as in `next()`
            let header = entries.header(at: index)
            total += varintSize(UInt64(key.count)) + key.count
            total += varintSize(UInt64(header.valueLength)) + Int(header.valueLength)
            total += varintSize(header.version) + varintSize(header.createRevision) + varintSize(header.modRevision)
        }
        return total
    }

    /// The next chunk, or `nil` after the one carrying the trailer.
    public mutating func next() -> [UInt8]? {
        guard !finished else { return nil }
        var chunk: [UInt8] = []
        chunk.reserveCapacity(Swift.min(chunkSize, 1 << 20) + 64)
        if position < 0 {
            chunk.append(contentsOf: snapshotMagic)
            chunk.append(snapshotFormatVersion)
            chunk.appendUInt64LE(appliedIndex)
            chunk.appendUInt64LE(revision)
            chunk.appendUInt64LE(UInt64(keys.count))
            position = 0
        }
        while position < keys.count && chunk.count < chunkSize {
            let key = keys[position]
            position += 1
            guard let index = entries.find(key) else { continue }  // unreachable: keys come from entries
            let header = entries.header(at: index)
            chunk.appendVarint(UInt64(key.count))
            key.append(to: &chunk)
            chunk.appendVarint(UInt64(header.valueLength))
            entries.withValue(at: index) { chunk.append(contentsOf: $0) }
            chunk.appendVarint(header.version)
            chunk.appendVarint(header.createRevision)
            chunk.appendVarint(header.modRevision)
        }
        crc.update(chunk)
        if position == keys.count {
            chunk.appendUInt32LE(crc.value)
            finished = true
        }
        return chunk
    }
}

/// Rebuilds a state machine from snapshot bytes fed in chunks of any size (for
/// example `InstallSnapshot` chunks as they arrive). Nothing is installed until
/// `StateMachine.restore(from:)` receives a reader whose snapshot was complete and
/// whose checksum matched.
public struct KVSnapshotReader: Sendable {
    enum Phase: Sendable { case header, entries, trailer, done }

    let limits: StateMachine.Limits
    var phase = Phase.header
    /// Bytes received but not yet parsed (less than one entry).
    var pending: [UInt8] = []
    var crc = CRC32C()
    var appliedIndex: LogIndex = 0
    var revision: UInt64 = 0
    var expectedCount: UInt64 = 0
    var entries = KVTable()
    var keys: [Key] = []

    /// Creates a reader that enforces `limits` on the keys and values it reads.
    public init(limits: StateMachine.Limits = StateMachine.Limits()) {
        self.limits = limits
    }

    /// `true` once the whole snapshot, trailer included, has been read and verified.
    public var isComplete: Bool { phase == .done }

    /// Parses the next bytes of the snapshot.
    ///
    /// - Throws: `KVError.malformedSnapshot` or `.snapshotChecksumMismatch`; the
    ///   reader is then unusable.
    public mutating func feed(_ bytes: [UInt8]) throws(KVError) {
        if phase == .done {
            guard bytes.isEmpty else { throw .malformedSnapshot("\(bytes.count) bytes after the end of the snapshot") }
            return
        }
        if pending.isEmpty {
            // The common case (a whole snapshot, or chunks that end on an entry): parse
            // the caller's bytes where they are and keep only an incomplete tail.
            let consumed = try bytes.withUnsafeBytes { raw in Result { () throws(KVError) in try parse(raw) } }.get()
            if consumed < bytes.count { pending = Array(bytes[consumed...]) }
        } else {
            pending.append(contentsOf: bytes)
            let buffered = pending
            let consumed = buffered.withUnsafeBytes { raw in Result { () throws(KVError) in try parse(raw) } }
            pending.removeFirst(try consumed.get())
        }
        if phase == .done && !pending.isEmpty {
            throw .malformedSnapshot("\(pending.count) bytes after the end of the snapshot")
        }
    }

    /// Parses as much of `raw` as is complete; returns the number of bytes consumed.
    private mutating func parse(_ raw: UnsafeRawBufferPointer) throws(KVError) -> Int {
        var reader = ByteReader(raw)
        var checkedThrough = 0
        defer { crc.update(UnsafeRawBufferPointer(rebasing: raw[0 ..< checkedThrough])) }
        while true {
            switch phase {
            case .header:
                guard reader.remaining >= snapshotHeaderSize else { return reader.offset }
                try readHeader(&reader)
                checkedThrough = reader.offset
                phase = expectedCount == 0 ? .trailer : .entries
            case .entries:
                guard try readEntry(&reader) else { return reader.offset }
                checkedThrough = reader.offset
                if UInt64(keys.count) == expectedCount { phase = .trailer }
            case .trailer:
                guard let stored = reader.readUInt32LE() else { return reader.offset }
                var computed = crc
                computed.update(UnsafeRawBufferPointer(rebasing: raw[0 ..< checkedThrough]))
                guard stored == computed.value else {
                    throw .snapshotChecksumMismatch(expected: stored, actual: computed.value)
                }
                phase = .done
            case .done:
                return reader.offset
            }
        }
    }

    private mutating func readHeader(_ reader: inout ByteReader) throws(KVError) {
        var magic: [UInt8] = []
        for _ in 0 ..< 4 { magic.append(reader.readByte() ?? 0) }
        guard magic == snapshotMagic else { throw .malformedSnapshot("not a key-value snapshot (bad magic bytes)") }
        let version = reader.readByte() ?? 0
        guard version == snapshotFormatVersion else {
            throw .malformedSnapshot("format version \(version) is not supported (this build reads \(snapshotFormatVersion))")
        }
        appliedIndex = reader.readUInt64LE() ?? 0
        revision = reader.readUInt64LE() ?? 0
        expectedCount = reader.readUInt64LE() ?? 0
        guard expectedCount <= revision else {
            throw .malformedSnapshot("\(expectedCount) keys cannot exist at revision \(revision)")
        }
        // The count comes from the file: reserve only for as many entries as the bytes
        // at hand can hold (at least `minimumEntrySize` each), so a crafted header
        // cannot make the reader allocate for millions of keys; the table grows with the
        // entries actually read beyond that.
        let reserve = Int(min(expectedCount, UInt64(max(reader.remaining / Self.minimumEntrySize, 1 << 10))))
        entries.reserveCapacity(reserve)
        keys.reserveCapacity(reserve)
    }

    /// The fewest bytes an entry takes: a 1-byte key with its length, an empty value's
    /// length, and three 1-byte varints.
    static let minimumEntrySize = 6

    /// Reads one entry; returns `false` (consuming nothing) if it is not complete yet.
    private mutating func readEntry(_ reader: inout ByteReader) throws(KVError) -> Bool {
        let start = reader.offset
        let badVarint = { KVError.malformedSnapshot("invalid varint in entry \(self.keys.count)") }
        // Clamped like `StateMachine.validate`: records sizes are 32-bit.
        let keyLimit = Swift.min(limits.maxKeySize, StateMachine.storableSize)
        let valueLimit = Swift.min(limits.maxValueSize, StateMachine.storableSize)
        guard let keyBytes = try reader.readLengthPrefixed(
                  limit: keyLimit, tooLong: {
                      .malformedSnapshot("a key of \($0) bytes exceeds the limit of \(keyLimit)") },
                  badVarint: badVarint),
              let valueBytes = try reader.readLengthPrefixed(
                  limit: valueLimit, tooLong: {
                      .malformedSnapshot("a value of \($0) bytes exceeds the limit of \(valueLimit)") },
                  badVarint: badVarint),
              let version = try reader.readVarint(context: badVarint),
              let createRevision = try reader.readVarint(context: badVarint),
              let modRevision = try reader.readVarint(context: badVarint)
        else {
            reader.offset = start
            return false
        }
        let key = Key(copying: keyBytes)
        guard key.count > 0 else { throw .malformedSnapshot("entry \(keys.count) has an empty key") }
        if let last = keys.last, !(last < key) {
            throw .malformedSnapshot("keys are not in strictly ascending order at entry \(keys.count)")
        }
        guard version >= 1, createRevision >= 1, createRevision <= modRevision, modRevision <= revision else {
            throw .malformedSnapshot("entry \(keys.count) has inconsistent version \(version) or revisions "
                + "\(createRevision)...\(modRevision) (store revision \(revision))")
        }
        // Keys arrive in strictly ascending order, so each one is new.
        entries.insertNew(key, hash: entries.hash(key), value: valueBytes, version: version,
                          createRevision: createRevision, modRevision: modRevision)
        keys.append(key)
        return true
    }
}

extension StateMachine {
    // MARK: Snapshots

    /// The snapshot as chunks of about `chunkSize` bytes (default 1 MiB).
    public func snapshotChunks(chunkSize: Int = 1 << 20) -> KVSnapshotWriter {
        KVSnapshotWriter(entries: entries, keys: orderedKeys.refreshed(live: entries),
                         appliedIndex: appliedIndex, revision: revision, chunkSize: chunkSize)
    }

    /// The whole snapshot as one byte array (see `snapshotChunks(chunkSize:)` to
    /// stream it instead).
    public func snapshotData() -> [UInt8] {
        var bytes: [UInt8] = []
        for chunk in snapshotChunks() {
            if bytes.isEmpty { bytes = chunk } else { bytes.append(contentsOf: chunk) }
        }
        return bytes
    }

    /// A reader for snapshots, with this state machine's limits.
    public func makeSnapshotReader() -> KVSnapshotReader { KVSnapshotReader(limits: limits) }

    /// Replaces the whole state with a fully read snapshot. Custom command handlers
    /// and limits are kept.
    ///
    /// - Throws: `KVError.malformedSnapshot` if the reader has not read a complete
    ///   snapshot; the state is then unchanged.
    public mutating func restore(from reader: consuming KVSnapshotReader) throws(KVError) {
        guard reader.isComplete else { throw .malformedSnapshot("the snapshot is truncated") }
        entries = reader.entries
        orderedKeys = OrderedKeyIndex(sortedKeys: reader.keys, revision: reader.revision)
        appliedIndex = reader.appliedIndex
        revision = reader.revision
    }

    /// Replaces the whole state with a snapshot read from a sequence of chunks (for
    /// example read lazily from a file). On error the state is unchanged.
    public mutating func restore(fromChunks chunks: some Sequence<[UInt8]>) throws(KVError) {
        var reader = makeSnapshotReader()
        for chunk in chunks { try reader.feed(chunk) }
        try restore(from: reader)
    }

    /// Replaces the whole state with a Raft snapshot's. When the snapshot's metadata
    /// names an index, it must equal the index the data was taken at.
    public mutating func restore(from snapshot: Snapshot) throws(KVError) {
        var reader = makeSnapshotReader()
        try reader.feed(snapshot.data)
        guard reader.isComplete else { throw .malformedSnapshot("the snapshot is truncated") }
        if snapshot.metadata.index != 0 && snapshot.metadata.index != reader.appliedIndex {
            throw .malformedSnapshot("the metadata says index \(snapshot.metadata.index) but the data was taken "
                + "at applied index \(reader.appliedIndex)")
        }
        try restore(from: reader)
    }

    /// The SHA-256 of the state's canonical snapshot bytes: equal on every replica
    /// that applied the same entries, and equal to the SHA-256 of `snapshotData()`,
    /// so a backup can be verified without restoring it.
    public func digest() -> [UInt8] {
        var sha = SHA256()
        for chunk in snapshotChunks() { sha.update(chunk) }
        return sha.finalize()
    }

    /// `digest()` as lower-case hexadecimal.
    public func digestHex() -> String { hexString(digest()) }
}
