public import AegisCRDT
public import AegisRaft

// Snapshot format (version 3; the reader also reads versions 1 and 2). Integers in the
// header and trailer are little-endian; the other fields use the varints of the
// command encoding.
//
//     header       "AKVS" magic (4 bytes), format version (1 byte),
//                  applied index (8), revision (8), string key count (8)
//     entries      one per string key, in strictly ascending key order:
//                  key length + key, value length + value,
//                  version, create revision, modify revision (varints)
//     collections  (version 2 only) the last HLC timestamp's physical and logical
//                  parts, the replica's dot counter, the number of set and hash
//                  keys (varints), then one per key in strictly ascending key order:
//                  key length + key, type (1 = set, 2 = hash), version, create
//                  revision, modify revision (varints), CRDT length + CRDT bytes
//                  (AegisCRDT's canonical encoding of the ORSet or ORMap)
//     expiry       (version 3 on) the keys' deadlines and the apply clock: see
//                  KVSnapshotExpiry.swift, which writes and reads this section
//     sections     (version 3 on) see KVSnapshotSections.swift: a section count,
//                  then per section in ascending tag order a tag and a
//                  length-prefixed body (1 = client sessions, 2 = DR state,
//                  4 = a DR re-seed in progress)
//     trailer      CRC-32C (4 bytes) of every byte before it
//
// Keys are written in order and the CRDT encodings are canonical, so the bytes are
// canonical: replicas with the same state produce identical snapshots, and
// `StateMachine.digest()` is the SHA-256 of them. The reader also rebuilds the
// ordered key index from that order for free.

/// The first bytes of every key-value snapshot.
let snapshotMagic: [UInt8] = Array("AKVS".utf8)
/// The snapshot format version written by this build.
let snapshotFormatVersion: UInt8 = 3
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
    let collections: [Key: StoredCollection]
    let collectionKeys: [Key]
    let lastTimestamp: HLCTimestamp
    let dotCounter: UInt64
    /// The sections block (version 3), written after the collections.
    let sectionsBlock: [UInt8]
    /// `true` once `sectionsBlock` is in a chunk.
    var sectionsWritten = false
    let expirySection: ExpirySectionWriter
    /// The next key to write; -1 before the header.
    var position = -1
    /// The next collection key to write; -1 before the collections section.
    var collectionPosition = -1
    /// The next expiry entry to write; -1 before the expiry section.
    var expiryPosition = -1
    var crc = CRC32C()
    var finished = false

    init(entries: KVTable, keys: [Key], appliedIndex: LogIndex, revision: UInt64, chunkSize: Int,
         collections: [Key: StoredCollection] = [:], lastTimestamp: HLCTimestamp, dotCounter: UInt64,
         expirySection: ExpirySectionWriter = ExpirySectionWriter(clock: 0, deadlines: [:]),
         sections: [KVSnapshotSection] = []) {
        self.expirySection = expirySection
        self.sectionsBlock = KVSnapshotSection.block(sections)
        self.entries = entries
        self.keys = keys
        self.appliedIndex = appliedIndex
        self.revision = revision
        self.chunkSize = Swift.max(chunkSize, 1)
        self.collections = collections
        self.collectionKeys = collections.keys.sorted()
        self.lastTimestamp = lastTimestamp
        self.dotCounter = dotCounter
    }

    /// The collections section's header.
    var collectionsHeader: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendVarint(lastTimestamp.physical)
        bytes.appendVarint(UInt64(lastTimestamp.logical))
        bytes.appendVarint(dotCounter)
        bytes.appendVarint(UInt64(collectionKeys.count))
        return bytes
    }

    /// Appends the entry of collection key `key`.
    func appendCollection(_ key: Key, to chunk: inout [UInt8]) {
        guard let stored = collections[key] else { return }  // unreachable: keys come from collections
        chunk.appendVarint(UInt64(key.count))
        key.append(to: &chunk)
        chunk.append(stored.value.type.rawValue)
        chunk.appendVarint(stored.version)
        chunk.appendVarint(stored.createRevision)
        chunk.appendVarint(stored.modRevision)
        chunk.appendLengthPrefixed(stored.value.encoded())
    }

    /// The number of bytes the chunks add up to (header, entries and trailer), counted
    /// without encoding them: one pass over the keys. A storage that records the
    /// snapshot's length before its bytes (`DiskStorage`) streams the chunks with it.
    public var byteCount: Int {
        // `keys` are exactly the table's keys, so the entries add up in slot order.
        var total = snapshotHeaderSize + 4 + entries.snapshotEntryBytes()
        total += collectionsHeader.count + sectionsBlock.count
        for key in collectionKeys {
            var entry: [UInt8] = []
            appendCollection(key, to: &entry)
            total += entry.count
        }
        return total + expirySection.byteCount
    }

    /// Keys looked up together (see `KVTable.locate`).
    static let lookupBatch = 32

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
            // Keys in batches, so that their lookups overlap (see `KVTable.locate`).
            let batch = keys[position ..< Swift.min(position + Self.lookupBatch, keys.count)]
            position = batch.endIndex
            let (indices, headers) = entries.locate(batch)
            for (offset, key) in batch.enumerated() {
                guard let index = indices[offset] else { continue }  // unreachable: keys come from entries
                let header = headers[offset]
                chunk.appendVarint(UInt64(key.count))
                key.append(to: &chunk)
                chunk.appendVarint(UInt64(header.valueLength))
                entries.withValue(at: index) { chunk.append(contentsOf: $0) }
                chunk.appendVarint(header.version)
                chunk.appendVarint(header.createRevision)
                chunk.appendVarint(header.modRevision)
            }
        }
        if position == keys.count && collectionPosition < 0 && chunk.count < chunkSize {
            chunk.append(contentsOf: collectionsHeader)
            collectionPosition = 0
        }
        while collectionPosition >= 0 && collectionPosition < collectionKeys.count && chunk.count < chunkSize {
            appendCollection(collectionKeys[collectionPosition], to: &chunk)
            collectionPosition += 1
        }
        if collectionPosition == collectionKeys.count && expiryPosition < 0 && chunk.count < chunkSize {
            chunk.append(contentsOf: expirySection.header)
            expiryPosition = 0
        }
        while expiryPosition >= 0 && expiryPosition < expirySection.keys.count && chunk.count < chunkSize {
            expirySection.appendEntry(expiryPosition, to: &chunk)
            expiryPosition += 1
        }
        if expiryPosition == expirySection.keys.count && !sectionsWritten {
            chunk.append(contentsOf: sectionsBlock)
            sectionsWritten = true
        }
        crc.update(chunk)
        if sectionsWritten {
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
    enum Phase: Sendable { case header, entries, collectionsHeader, collections, expiryHeader, expiry, sections, trailer, done }

    let limits: StateMachine.Limits
    let replica: ReplicaID
    /// The format version of the snapshot being read.
    var formatVersion: UInt8 = 0
    var collections: [Key: StoredCollection] = [:]
    var lastCollectionKey: Key?
    var expectedCollections: UInt64 = 0
    var lastTimestamp = HLCTimestamp(physical: 0, replica: "")
    var dotCounter: UInt64 = 0
    /// The sections read (version 3), by tag.
    var sections: [UInt64: [UInt8]] = [:]
    /// The expiry section (format 3 on).
    var expirySection = ExpirySectionReader()
    var phase = Phase.header
    /// Bytes received but not yet parsed (less than one entry).
    var pending: [UInt8] = []
    var crc = CRC32C()
    var appliedIndex: LogIndex = 0
    var revision: UInt64 = 0
    var expectedCount: UInt64 = 0
    var entries = KVTable()
    var keys: [Key] = []
    /// Slots of entries read whose records are written but that are not placed in
    /// `entries` yet (at most `slotBatch`).
    var pendingSlots: [TableSlot] = []
    /// The snapshot's whole length, when the caller knows it before the bytes arrive
    /// (`announce(totalBytes:)`); 0 otherwise.
    var announcedBytes = 0

    /// Creates a reader that enforces `limits` on the keys, values, sets and hashes it
    /// reads, for a state machine whose replica ID is `replica`.
    public init(limits: StateMachine.Limits = StateMachine.Limits(), replica: ReplicaID = StateMachine.defaultReplica) {
        self.limits = limits
        self.replica = replica
    }

    /// The phase after the string entries.
    var afterEntries: Phase { formatVersion >= 2 ? .collectionsHeader : .trailer }
    /// The phase after the collections.
    var afterCollections: Phase { formatVersion >= 3 ? .expiryHeader : .trailer }

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

    /// Tells the reader the snapshot's length in bytes before they arrive (a storage
    /// streaming a file knows it): the table is then sized once for up to one entry per
    /// 64 bytes, at most the count the header announces, instead of growing as chunks
    /// arrive. Call before the first bytes.
    public mutating func announce(totalBytes: Int) { announcedBytes = Swift.max(0, totalBytes) }

    /// Takes the memory of full-size arena slabs from `source` while reading (see
    /// `ArenaSlabSource`); the restored state machine no longer uses it.
    public mutating func takeSlabs(from source: any ArenaSlabSource) { entries.arena.slabSource = source }

    /// Parses the complete part of `bytes` where they are and returns how many bytes
    /// that was; nothing is buffered: the caller passes the rest again, followed by the
    /// next bytes (`SnapshotPreparation`'s contract). Not for a reader fed with
    /// `feed(_:)` and holding an incomplete tail.
    ///
    /// - Throws: as `feed(_:)`, and `KVError.malformedSnapshot` when bytes remain after
    ///   the end of the snapshot.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(KVError) -> Int {
        guard pending.isEmpty else { throw .malformedSnapshot("consume(_:) after feed(_:) left an incomplete entry") }
        let consumed = phase == .done ? 0 : try parse(bytes)
        if phase == .done && consumed < bytes.count {
            throw .malformedSnapshot("\(bytes.count - consumed) bytes after the end of the snapshot")
        }
        return consumed
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
                phase = expectedCount == 0 ? afterEntries : .entries
            case .entries:
                guard try readEntry(&reader) else { return reader.offset }
                checkedThrough = reader.offset
                if UInt64(keys.count) == expectedCount {
                    placePendingSlots()  // every key is findable from here on
                    phase = afterEntries
                }
            case .collectionsHeader:
                guard try readCollectionsHeader(&reader) else { return reader.offset }
                checkedThrough = reader.offset
                phase = expectedCollections == 0 ? afterCollections : .collections
            case .collections:
                guard try readCollection(&reader) else { return reader.offset }
                checkedThrough = reader.offset
                if UInt64(collections.count) == expectedCollections { phase = afterCollections }
            case .expiryHeader:
                guard try expirySection.readHeader(&reader, keyCount: keys.count + collections.count) else {
                    return reader.offset
                }
                checkedThrough = reader.offset
                phase = expirySection.isComplete ? .sections : .expiry
            case .expiry:
                let keyLimit = Swift.min(limits.maxKeySize, StateMachine.storableSize)
                let (entries, collections) = (self.entries, self.collections)
                guard try expirySection.readEntry(&reader, keyLimit: keyLimit, exists: {
                    entries.find($0) != nil || collections[$0] != nil
                }) else { return reader.offset }
                checkedThrough = reader.offset
                if expirySection.isComplete { phase = .sections }
            case .sections:
                guard try readSections(&reader) else { return reader.offset }
                checkedThrough = reader.offset
                phase = .trailer
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
        guard version >= 1 && version <= snapshotFormatVersion else {
            throw .malformedSnapshot("format version \(version) is not supported (this build reads 1 to \(snapshotFormatVersion))")
        }
        formatVersion = version
        appliedIndex = reader.readUInt64LE() ?? 0
        revision = reader.readUInt64LE() ?? 0
        expectedCount = reader.readUInt64LE() ?? 0
        guard expectedCount <= revision else {
            throw .malformedSnapshot("\(expectedCount) keys cannot exist at revision \(revision)")
        }
        // The count comes from the file: reserve only for as many entries as the bytes
        // at hand (or announced) can hold (at least `minimumEntrySize` each), so a crafted header
        // cannot make the reader allocate for millions of keys; the table grows with the
        // entries actually read beyond that.
        // An announced length is not verified yet (the checksums are at the end, and a
        // flipped bit in the count must end as a checksum error, not an allocation of
        // gigabytes): from it, reserve at most one entry per 64 bytes, about a byte of
        // memory per byte of snapshot; the table grows for smaller entries.
        let available = Swift.max(reader.remaining / Self.minimumEntrySize, announcedBytes / 64)
        let reserve = Int(min(expectedCount, UInt64(max(available, 1 << 10))))
        entries.reserveCapacity(reserve)
        keys.reserveCapacity(reserve)
    }

    /// Entries whose slots are placed together (1M: 16 MB, and as much again while
    /// they are ordered); a test sets fewer.
    var slotBatch = 1 << 20

    /// Places the slots of the entries read since the last call.
    mutating func placePendingSlots() {
        entries.insertSlots(pendingSlots)
        pendingSlots.removeAll(keepingCapacity: true)
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
        // Keys arrive in strictly ascending order, so each one is new: its record is
        // written now, its slot placed with a batch (`KVTable.insertSlots`).
        pendingSlots.append(entries.appendRecord(key, hash: entries.hash(key), value: valueBytes, version: version,
                                                 createRevision: createRevision, modRevision: modRevision))
        keys.append(key)
        if pendingSlots.count >= slotBatch { placePendingSlots() }
        return true
    }
}

extension KVSnapshotReader {
    /// Reads the collections section's header; `false` (consuming nothing) if it is
    /// not complete yet.
    mutating func readCollectionsHeader(_ reader: inout ByteReader) throws(KVError) -> Bool {
        let start = reader.offset
        let badVarint = { KVError.malformedSnapshot("invalid varint in the collections header") }
        guard let physical = try reader.readVarint(context: badVarint),
              let logical = try reader.readVarint(context: badVarint),
              let dots = try reader.readVarint(context: badVarint),
              let count = try reader.readVarint(context: badVarint)
        else {
            reader.offset = start
            return false
        }
        guard let logical32 = UInt32(exactly: logical) else {
            throw .malformedSnapshot("the HLC logical counter \(logical) does not fit in 32 bits")
        }
        guard count <= revision - expectedCount else {
            throw .malformedSnapshot("\(expectedCount) string and \(count) set or hash keys cannot exist at revision \(revision)")
        }
        lastTimestamp = HLCTimestamp(physical: physical, logical: logical32, replica: replica)
        dotCounter = dots
        expectedCollections = count
        return true
    }

    /// Reads one set or hash entry; `false` (consuming nothing) if it is not complete yet.
    mutating func readCollection(_ reader: inout ByteReader) throws(KVError) -> Bool {
        let start = reader.offset
        let number = collections.count
        let badVarint = { KVError.malformedSnapshot("invalid varint in set or hash entry \(number)") }
        let keyLimit = Swift.min(limits.maxKeySize, StateMachine.storableSize)
        guard let keyBytes = try reader.readLengthPrefixed(
                  limit: keyLimit, tooLong: { .malformedSnapshot("a key of \($0) bytes exceeds the limit of \(keyLimit)") },
                  badVarint: badVarint),
              let rawType = reader.readByte(),
              let version = try reader.readVarint(context: badVarint),
              let createRevision = try reader.readVarint(context: badVarint),
              let modRevision = try reader.readVarint(context: badVarint),
              let crdtBytes = try reader.readLengthPrefixed(
                  limit: Int.max, tooLong: { .malformedSnapshot("a set or hash of \($0) bytes is too long") },
                  badVarint: badVarint)
        else {
            reader.offset = start
            return false
        }
        let key = Key(copying: keyBytes)
        guard key.count > 0 else { throw .malformedSnapshot("set or hash entry \(number) has an empty key") }
        if let last = lastCollectionKey, !(last < key) {
            throw .malformedSnapshot("set and hash keys are not in strictly ascending order at entry \(number)")
        }
        guard entries.find(key) == nil else {
            throw .malformedSnapshot("key \(key) is both a string and a set or hash")
        }
        guard let type = ValueType(rawValue: rawType), type != .string else {
            throw .malformedSnapshot("set or hash entry \(number) has unknown type \(rawType)")
        }
        guard version >= 1, createRevision >= 1, createRevision <= modRevision, modRevision <= revision else {
            throw .malformedSnapshot("set or hash entry \(number) has inconsistent version \(version) or revisions "
                + "\(createRevision)...\(modRevision) (store revision \(revision))")
        }
        let value: CollectionValue
        do {
            value = try CollectionValue(type: type, encoded: copyBytes(crdtBytes))
        } catch {
            throw .malformedSnapshot("set or hash entry \(number): \(error)")
        }
        try check(value, entry: number)
        collections[key] = StoredCollection(value: value, version: version, createRevision: createRevision,
                                            modRevision: modRevision)
        lastCollectionKey = key
        return true
    }

    /// Checks a decoded set or hash against the limits and the dot counter.
    func check(_ value: CollectionValue, entry number: Int) throws(KVError) {
        guard value.count > 0 else { throw .malformedSnapshot("set or hash entry \(number) is empty") }
        guard value.count <= limits.maxCollectionSize else {
            throw .malformedSnapshot("set or hash entry \(number) has \(value.count) members or fields, "
                + "more than the limit of \(limits.maxCollectionSize)")
        }
        let valueLimit = Swift.min(limits.maxValueSize, StateMachine.storableSize)
        let items: [[UInt8]]
        switch value {
        case .set(let set): items = Array(set.elements)
        case .hash(let map): items = map.keys.flatMap { [$0, map[$0]?.value ?? []] }
        }
        if let long = items.first(where: { $0.count > valueLimit }) {
            throw .malformedSnapshot("set or hash entry \(number) holds \(long.count) bytes, more than the limit of \(valueLimit)")
        }
        guard value.highestCounter(of: replica) <= dotCounter else {
            throw .malformedSnapshot("set or hash entry \(number) has a dot of \(replica) beyond the dot counter \(dotCounter)")
        }
    }
}

extension StateMachine {
    // MARK: Snapshots

    /// The snapshot as chunks of about `chunkSize` bytes (default 1 MiB).
    public func snapshotChunks(chunkSize: Int = 1 << 20) -> KVSnapshotWriter {
        KVSnapshotWriter(entries: entries, keys: orderedKeys.refreshed(live: entries),
                         appliedIndex: appliedIndex, revision: revision, chunkSize: chunkSize,
                         collections: collections, lastTimestamp: lastTimestamp, dotCounter: dotCounter,
                         expirySection: ExpirySectionWriter(clock: expiryClock, deadlines: expiry.deadlines),
                         sections: snapshotSections())
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
    public func makeSnapshotReader() -> KVSnapshotReader { KVSnapshotReader(limits: limits, replica: replica) }

    /// Replaces the whole state with a fully read snapshot. Custom command handlers
    /// and limits are kept.
    ///
    /// - Throws: `KVError.malformedSnapshot` if the reader has not read a complete
    ///   snapshot; the state is then unchanged.
    public mutating func restore(from reader: consuming KVSnapshotReader) throws(KVError) {
        guard reader.isComplete else { throw .malformedSnapshot("the snapshot is truncated") }
        let restoredSessions = try reader.sections[KVSnapshotSection.sessionsTag]
            .map { bytes throws(KVError) in try Self.decodeSessions(bytes, limits: limits) } ?? [:]
        let restoredDR = try reader.sections[KVSnapshotSection.drTag].map { bytes throws(KVError) in
            try DRState(section: bytes)
        } ?? DRState()
        let restoredActiveActive = try reader.sections[KVSnapshotSection.activeActiveTag].map { bytes throws(KVError) in
            try ActiveActiveState(section: bytes)
        } ?? ActiveActiveState()
        let restoredSeed = try reader.sections[KVSnapshotSection.seedTag].map { bytes throws(KVError) in
            try DRSeedStaging(section: bytes)
        }
        let restoredCatchUps = try reader.sections[KVSnapshotSection.activeActiveCatchUpTag].map { bytes throws(KVError) in
            try Self.activeActiveCatchUps(section: bytes)
        } ?? [:]
        let restoredConflicts = try reader.sections[KVSnapshotSection.activeActiveConflictsTag].map {
            bytes throws(KVError) in try ActiveActiveConflictState(section: bytes)
        } ?? ActiveActiveConflictState()
        let restoredTopology = try reader.sections[KVSnapshotSection.activeActiveTopologyTag].map {
            bytes throws(KVError) in try ActiveActiveTopology.fromSection(bytes)
        }
        sessions = restoredSessions
        activeActiveTopologyState = restoredTopology?.topology
        activeActiveTopologyVersionState = restoredTopology?.version ?? .zero
        activeActiveConflicts = restoredConflicts
        activeActive = restoredActiveActive
        activeActiveCatchUpProgress = restoredCatchUps
        drSeed = restoredSeed
        entries = reader.entries
        entries.arena.slabSource = nil  // a restore's helper only
        orderedKeys = OrderedKeyIndex(sortedKeys: reader.keys, revision: reader.revision)
        appliedIndex = reader.appliedIndex
        revision = reader.revision
        collections = reader.collections
        dotCounter = reader.dotCounter
        drState = restoredDR
        lastTimestamp = HLCTimestamp(physical: reader.lastTimestamp.physical, logical: reader.lastTimestamp.logical,
                                     replica: replica)
        expiry = ExpiryIndex(deadlines: reader.expirySection.deadlines)
        expiryClock = reader.expirySection.clock
        rebuildActiveActivePending()
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

/// What a snapshot's bytes say about themselves without restoring them: the applied
/// index and the number of keys of every type. Walks the string entries (skipping their
/// bytes) to the collection count; checks neither the checksum nor the collections.
public struct KVSnapshotSummary: Sendable, Hashable {
    /// The index the snapshot was taken at.
    public var appliedIndex: LogIndex
    /// String keys plus set and hash keys.
    public var keyCount: Int

    /// Reads the summary of `bytes`; `nil` when they are not a well-formed snapshot start.
    public init?(_ bytes: [UInt8]) {
        guard let summary = bytes.withUnsafeBytes({ raw in Self.read(raw) }) else { return nil }
        self = summary
    }

    private init(appliedIndex: LogIndex, keyCount: Int) {
        self.appliedIndex = appliedIndex
        self.keyCount = keyCount
    }

    private static func read(_ raw: UnsafeRawBufferPointer) -> KVSnapshotSummary? {
        var reader = ByteReader(raw)
        var magic: [UInt8] = []
        for _ in 0 ..< 4 { magic.append(reader.readByte() ?? 0) }
        guard magic == snapshotMagic, let version = reader.readByte(), version >= 1, version <= snapshotFormatVersion,
              let applied = reader.readUInt64LE(), reader.readUInt64LE() != nil, let strings = reader.readUInt64LE(),
              strings <= UInt64(raw.count) else { return nil }
        guard version >= 2 else { return KVSnapshotSummary(appliedIndex: applied, keyCount: Int(strings)) }
        let bad = { KVError.malformedSnapshot("summary") }
        let skipped: Bool? = try? { () throws(KVError) -> Bool in
            for _ in 0 ..< strings {
                guard try reader.readLengthPrefixed(limit: Int.max, tooLong: { _ in bad() }, badVarint: bad) != nil,
                      try reader.readLengthPrefixed(limit: Int.max, tooLong: { _ in bad() }, badVarint: bad) != nil,
                      try reader.readVarint(context: bad) != nil, try reader.readVarint(context: bad) != nil,
                      try reader.readVarint(context: bad) != nil else { return false }
            }
            return true
        }()
        // The last HLC timestamp (physical, logical), the dot counter, then the count.
        guard skipped == true, (try? reader.readVarint(context: bad)) != nil, (try? reader.readVarint(context: bad)) != nil,
              (try? reader.readVarint(context: bad)) != nil,
              let collections = try? reader.readVarint(context: bad), collections <= UInt64(raw.count) else { return nil }
        let (total, overflow) = Int(strings).addingReportingOverflow(Int(collections))
        return overflow ? nil : KVSnapshotSummary(appliedIndex: applied, keyCount: total)
    }
}
