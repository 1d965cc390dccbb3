/// A stored value with its version information, materialised from the table (the
/// table itself keeps the value bytes in its arena).
@usableFromInline struct StoredValue: Sendable {
    @usableFromInline var value: [UInt8]
    /// Invariant: `version >= 1` for every stored key.
    @usableFromInline var version: UInt64
    /// Invariant: `createRevision <= modRevision <= StateMachine.revision`.
    @usableFromInline var createRevision: UInt64
    @usableFromInline var modRevision: UInt64

    @inlinable init(value: [UInt8], version: UInt64, createRevision: UInt64, modRevision: UInt64) {
        self.value = value
        self.version = version
        self.createRevision = createRevision
        self.modRevision = modRevision
    }
}

/// The outcome of `KVTable.write(_:hash:value:revision:)`.
@usableFromInline struct WriteOutcome {
    /// `true` if the key was created.
    @usableFromInline var created: Bool
    /// The key's version after the write.
    @usableFromInline var version: UInt64
    /// The value before the write, `nil` if the key was created.
    @usableFromInline var previous: [UInt8]?

    @inlinable init(created: Bool, version: UInt64, previous: [UInt8]?) {
        self.created = created
        self.version = version
        self.previous = previous
    }
}

/// The store's hash table: open addressing with linear probing over a power-of-two
/// array of 16-byte slots (`TableSlot`: hash, key length, record location), with each
/// key's bytes, value and versions in a `Record` in a `ValueArena`.
///
/// Why this shape (measured on the 1M-key benchmark): a new key costs one probe of a
/// small slot array plus one append to the arena, with no heap allocation; the slot
/// array holds no references, so copying, growing and freeing it are `memcpy`s; and a
/// 16-byte slot keeps the pages the kernel must zero while the table grows to a quarter
/// of what a 64-byte slot needed. A lookup compares the 32-bit hash and the length in
/// the slot before touching the record, so a miss almost never leaves the slot array.
///
/// The home slot of a key is the top bits of its stored 32-bit hash. Growing doubles
/// the table, which sends home `h` to `2h` or `2h + 1`: walking the old table in order
/// fills the new one almost sequentially (no cache misses, no rehashing).
///
/// Growing is incremental, so no single write pays for moving every key (at 3M keys a
/// one-go doubling stalled the apply loop for about 240 ms): the old slot array stays
/// as `draining`, every insert and removal moves the next `drainBatch` keys from it
/// (whole probe runs, in slot order), lookups try the new array and then the old one,
/// and the old array is freed when it is empty. The new array comes zeroed from
/// `calloc` (an empty slot is all zeros), so the kernel zeroes its pages as they are
/// first written instead of all at once. A doubling starts at 3/4 load of the old
/// array and must finish before the new one reaches 3/4: that leaves 3/4 × the old
/// slot count inserts for the old array's at most 3/4 × slot count keys, and every
/// insert moves `drainBatch` (> 1) of them. Removal uses
/// backward-shift deletion (no tombstones), so probe runs never degrade. The hash is
/// seeded per table, which keeps crafted keys from colliding on purpose; slot order is
/// never observable (every ordered output goes through the sorted key index), so the
/// seed does not make replicas differ.
@usableFromInline struct KVTable: Sendable {
    @usableFromInline var storage: SlotStorage
    @usableFromInline var arena = ValueArena()
    /// The number of stored keys (in `storage` and `draining`). Invariant:
    /// `count <= storage.slotCount * 3 / 4`.
    @usableFromInline internal(set) var count = 0
    /// `32 - log2(slotCount)`: a hash shifted right by this is its home slot.
    @usableFromInline var homeShift: UInt32
    @usableFromInline let seed: UInt64
    /// While the table grows: the previous slot array, whose keys are being moved to
    /// `storage`. Slot indices at or above `storage.slotCount` refer to it (offset by
    /// `storage.slotCount`).
    @usableFromInline var draining: SlotStorage?
    /// `homeShift` of `draining`.
    @usableFromInline var drainingShift: UInt32 = 0
    /// Keys still in `draining`.
    @usableFromInline var drainingCount = 0
    /// The next slot of `draining` to move; every slot before it (from `drainStart`,
    /// cyclically) is empty. Moving stops only after an empty slot, so every probe run
    /// that is left is whole.
    @usableFromInline var drainStep = 0
    /// An empty slot of `draining` when the growth began; moving starts after it.
    @usableFromInline var drainStart = 0
    /// Keys moved out of `draining` per insert or removal (at least, since a probe run is
    /// never split).
    @usableFromInline static let drainBatch = 16

    /// Creates an empty table with room for `minimumCapacity` keys.
    init(minimumCapacity: Int = 0, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.seed = seed
        let slots = Self.slotCount(for: minimumCapacity)
        storage = SlotStorage(slotCount: slots)
        homeShift = Self.homeShift(for: slots)
    }

    /// The smallest power-of-two slot count (at least 8) that holds `keys` keys.
    static func slotCount(for keys: Int) -> Int {
        var slots = 8
        while slots * 3 / 4 < keys { slots *= 2 }
        return slots
    }

    @usableFromInline static func homeShift(for slotCount: Int) -> UInt32 {
        UInt32(Swift.max(0, 32 - (Int.bitWidth - 1 - slotCount.leadingZeroBitCount)))
    }

    /// The 32-bit table hash of `key`.
    @inlinable func hash(_ key: Key) -> UInt32 { UInt32(truncatingIfNeeded: key.tableHash(seed: seed) >> 32) }

    // MARK: Lookup

    /// The slot holding `key` (whose hash is `hash`), or `nil`.
    @inlinable func find(_ key: Key, hash: UInt32) -> Int? {
        guard key.length > 0 else { return nil }
        if let index = probe(storage, shift: homeShift, for: key, hash: hash) { return index }
        guard let old = draining, let index = probe(old, shift: drainingShift, for: key, hash: hash) else { return nil }
        return storage.slotCount + index
    }

    /// The slot of `table` (with home shift `shift`) holding `key`, or `nil`.
    @inlinable func probe(_ table: SlotStorage, shift: UInt32, for key: Key, hash: UInt32) -> Int? {
        let slots = table.slots, mask = table.slotCount - 1
        let length = UInt32(truncatingIfNeeded: key.length)
        var index = Int(truncatingIfNeeded: hash >> shift) & mask
        while true {
            let slot = slots[index]  // in bounds: index is masked
            if slot.keyLength == 0 { return nil }
            if slot.hash == hash && slot.keyLength == length && keyMatches(key, slot) { return index }
            index = (index + 1) & mask
        }
    }

    /// `true` if the key stored in the record of `slot` equals `key` (of the same length).
    @inlinable func keyMatches(_ key: Key, _ slot: TableSlot) -> Bool {
        let stored = arena.bytes(at: slot.location, count: RecordHeader.size + key.length)
        guard stored.count == RecordHeader.size + key.length else { return false }
        return key.withUnsafeBytes { compareBytes($0, UnsafeRawBufferPointer(rebasing: stored[RecordHeader.size...])) == 0 }
    }

    /// The slot holding `key`, or `nil`.
    @inlinable func find(_ key: Key) -> Int? { find(key, hash: hash(key)) }

    /// The slot at `index` (an index `find` returned).
    @inlinable func slot(at index: Int) -> TableSlot {
        if index < storage.slotCount { return storage.slots[index & (storage.slotCount - 1)] }
        guard let old = draining else { return .empty }
        return old.slots[(index - storage.slotCount) & (old.slotCount - 1)]
    }

    /// Points the occupied slot `index` at the record now at `location`.
    @usableFromInline mutating func setLocation(_ location: ArenaLocation, at index: Int) {
        if index < storage.slotCount {
            uniqueSlots()[index & (storage.slotCount - 1)].location = location
        } else if let old = uniqueDrainingSlots() {
            old.slots[(index - storage.slotCount) & (old.slotCount - 1)].location = location
        }
    }

    /// The record header of the occupied slot `index`.
    @inlinable func header(at index: Int) -> RecordHeader {
        RecordHeader(from: arena.bytes(at: slot(at: index).location, count: RecordHeader.size))
    }

    /// Calls `body` with the value bytes of the occupied slot `index`.
    @inlinable func withValue<Result>(at index: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let slot = self.slot(at: index)
        let header = RecordHeader(from: arena.bytes(at: slot.location, count: RecordHeader.size))
        let start = RecordHeader.size + Int(slot.keyLength)
        let record = arena.bytes(at: slot.location, count: start + Int(header.valueLength))
        return body(record.count > start ? UnsafeRawBufferPointer(rebasing: record[start...]) : UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// A copy of the value of the occupied slot `index`.
    @inlinable func value(at index: Int) -> [UInt8] { withValue(at: index) { copyBytes($0) } }

    /// The value and versions of the occupied slot `index`.
    @inlinable func stored(at index: Int) -> StoredValue {
        let header = self.header(at: index)
        return StoredValue(value: value(at: index), version: header.version,
                           createRevision: header.createRevision, modRevision: header.modRevision)
    }

    /// The key of the occupied slot `index`.
    func key(at index: Int) -> Key {
        let slot = self.slot(at: index)
        let record = arena.bytes(at: slot.location, count: RecordHeader.size + Int(slot.keyLength))
        guard record.count > RecordHeader.size else { return Key.empty }  // unreachable for an occupied slot
        return Key(copying: UnsafeRawBufferPointer(rebasing: record[RecordHeader.size...]))
    }

    /// The value stored under `key`.
    subscript(key: Key) -> StoredValue? { find(key).map { stored(at: $0) } }

    /// `true` if `key` is stored.
    func contains(_ key: Key) -> Bool { find(key) != nil }

    // MARK: Writes

    /// Sets `key` (whose hash is `hash`; length `1...UInt32.max`) to `value` at store
    /// revision `revision`: creates it with version 1 or bumps its version. The record
    /// is rewritten in place when the value fits and no copy shares its slab.
    @inlinable mutating func write(_ key: Key, hash: UInt32, value: UnsafeRawBufferPointer,
                                   revision: UInt64) -> WriteOutcome {
        write(key, hash: hash, found: find(key, hash: hash), value: value, revision: revision)
    }

    /// `write(_:hash:value:revision:)` for a caller that looked the key up already:
    /// `found` is `find(key, hash: hash)`, with no write of the table since.
    /// With `keepingPrevious` false the outcome's `previous` is `nil` (no copy of the old
    /// value for a caller that does not read it).
    @inlinable mutating func write(_ key: Key, hash: UInt32, found: Int?, value: UnsafeRawBufferPointer,
                                   revision: UInt64, keepingPrevious: Bool = true) -> WriteOutcome {
        guard let index = found else {
            insertNew(key, hash: hash, value: value, version: 1, createRevision: revision, modRevision: revision)
            return WriteOutcome(created: true, version: 1, previous: nil)
        }
        let previous = keepingPrevious ? self.value(at: index) : nil
        let slot = self.slot(at: index)
        var header = self.header(at: index)
        header.version += 1
        header.modRevision = revision
        header.valueLength = UInt32(truncatingIfNeeded: value.count)
        let keyLength = Int(slot.keyLength)
        let oldSize = RecordHeader.size + Int(header.capacity)
        if keyLength + value.count <= Int(header.capacity),
           let bytes = arena.writableBytes(at: slot.location, count: oldSize) {
            header.write(to: bytes)
            copy(value, to: bytes + RecordHeader.size + keyLength)
        } else {
            header.capacity = UInt32(truncatingIfNeeded: keyLength + value.count)
            let (location, bytes) = arena.allocate(RecordHeader.size + keyLength + value.count)
            if let bytes {
                header.write(to: bytes)
                copy(arena.bytes(at: slot.location + UInt64(RecordHeader.size), count: keyLength), to: bytes + RecordHeader.size)
                copy(value, to: bytes + RecordHeader.size + keyLength)
            }
            arena.release(slot.location, count: oldSize)
            setLocation(location, at: index)
            if arena.needsCompaction { compact() }
        }
        return WriteOutcome(created: false, version: header.version, previous: previous)
    }

    /// Inserts a key that is not in the table.
    @inlinable mutating func insertNew(_ key: Key, hash: UInt32, value: UnsafeRawBufferPointer,
                                       version: UInt64, createRevision: UInt64, modRevision: UInt64) {
        if draining != nil { drain(Self.drainBatch) }
        if count + 1 > storage.slotCount * 3 / 4 {
            beginGrowth(to: storage.slotCount * 2)
            drain(Self.drainBatch)
        }
        let slot = appendRecord(key, hash: hash, value: value, version: version, createRevision: createRevision,
                                modRevision: modRevision)
        let slots = uniqueSlots()
        let mask = storage.slotCount - 1
        var index = Int(truncatingIfNeeded: hash >> homeShift) & mask
        while slots[index].keyLength != 0 { index = (index + 1) & mask }
        slots[index] = slot
        count += 1
    }

    /// Writes the arena record of a key that is not in the table and returns the slot
    /// that points at it; the key is stored once the slot is placed (`insertNew`, or
    /// `insertSlots(_:)` for many at once).
    @inlinable mutating func appendRecord(_ key: Key, hash: UInt32, value: UnsafeRawBufferPointer, version: UInt64,
                                          createRevision: UInt64, modRevision: UInt64) -> TableSlot {
        let capacity = key.length + value.count
        let (location, bytes) = arena.allocate(RecordHeader.size + capacity)
        if let bytes {
            RecordHeader(valueLength: UInt32(truncatingIfNeeded: value.count), capacity: UInt32(truncatingIfNeeded: capacity),
                         version: version, createRevision: createRevision, modRevision: modRevision).write(to: bytes)
            key.withUnsafeBytes { copy($0, to: bytes + RecordHeader.size) }
            copy(value, to: bytes + RecordHeader.size + key.length)
        }
        return TableSlot(hash: hash, keyLength: UInt32(truncatingIfNeeded: key.length), location: location)
    }

    /// Removes `key`, returning its value.
    @discardableResult mutating func remove(_ key: Key) -> StoredValue? {
        guard let index = find(key) else { return nil }
        let removed = stored(at: index)
        let slot = self.slot(at: index)
        let size = RecordHeader.size + Int(header(at: index).capacity)
        if index < storage.slotCount {
            Self.removeSlot(at: index, in: uniqueSlots(), slotCount: storage.slotCount, shift: homeShift)
        } else if let old = uniqueDrainingSlots() {
            Self.removeSlot(at: index - storage.slotCount, in: old.slots, slotCount: old.slotCount, shift: drainingShift)
            drainingCount -= 1
        }
        count -= 1
        arena.release(slot.location, count: size)
        if draining != nil { drain(Self.drainBatch) }
        if arena.needsCompaction { compact() }
        return removed
    }

    /// Empties slot `hole` of `slots` (`slotCount` slots, home shift `shift`) and
    /// shifts later members of its probe run back so that every key stays reachable
    /// from its home slot.
    static func removeSlot(at hole: Int, in slots: UnsafeMutablePointer<TableSlot>, slotCount: Int, shift: UInt32) {
        let mask = slotCount - 1
        var hole = hole & mask
        var next = hole
        while true {
            next = (next + 1) & mask
            let moving = slots[next]
            if moving.keyLength == 0 { break }
            let home = Int(truncatingIfNeeded: moving.hash >> shift) & mask
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let homeBetween = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeBetween {
                slots[hole] = moving
                hole = next
            }
        }
        slots[hole] = .empty
    }

    /// Makes room for `keys` keys without growing again (at once, not incrementally).
    mutating func reserveCapacity(_ keys: Int) {
        let needed = Self.slotCount(for: keys)
        if draining != nil { drain(Int.max) }
        if needed > storage.slotCount {
            beginGrowth(to: needed)
            drain(Int.max)
        }
    }

    /// Starts moving every key into a slot array of `slotCount` slots (a larger power
    /// of two): the current array becomes `draining`. Finishes a growth in progress first.
    @usableFromInline mutating func beginGrowth(to slotCount: Int) {
        if draining != nil { drain(Int.max) }
        let old = storage
        var start = 0
        while start < old.slotCount && old.slots[start].keyLength != 0 { start += 1 }  // one is empty: count < slotCount
        storage = SlotStorage(slotCount: slotCount)
        draining = old
        drainingShift = homeShift
        drainingCount = count
        homeShift = Self.homeShift(for: slotCount)
        drainStart = start
        drainStep = 0
    }

    /// Moves at least `batch` keys (whole probe runs, in slot order) from `draining`
    /// to `storage`; frees `draining` once it is empty. Walking the old array in order
    /// lands keys nearly sequentially in the new one (home `h` goes to `2h` or `2h + 1`).
    @usableFromInline mutating func drain(_ batch: Int) {
        guard let old = uniqueDrainingSlots() else { return }
        let source = old.slots, oldMask = old.slotCount - 1
        let target = uniqueSlots(), mask = storage.slotCount - 1, shift = homeShift
        var moved = 0
        while drainStep < old.slotCount && drainingCount > 0 {
            drainStep += 1
            let position = (drainStart + drainStep) & oldMask
            let slot = source[position]
            if slot.keyLength == 0 {
                if moved >= batch { break }
                continue
            }
            var index = Int(truncatingIfNeeded: slot.hash >> shift) & mask
            while target[index].keyLength != 0 { index = (index + 1) & mask }
            target[index] = slot
            source[position] = .empty
            drainingCount -= 1
            moved += 1
        }
        if drainingCount == 0 || drainStep >= old.slotCount {
            draining = nil
            drainingCount = 0
        }
    }

    /// Moves the live records out of slabs that are mostly garbage, so those slabs are
    /// freed (see `ValueArena`).
    @usableFromInline mutating func compact() {
        let victims = arena.compactionVictims()
        let total = storage.slotCount + (draining?.slotCount ?? 0)
        for index in 0 ..< total {
            let slot = self.slot(at: index)
            guard slot.keyLength != 0 else { continue }
            let number = ValueArena.slab(of: slot.location)
            guard number < victims.count, victims[number] else { continue }
            let size = RecordHeader.size + Int(header(at: index).capacity)
            let (location, bytes) = arena.allocate(size)
            if let bytes { copy(arena.bytes(at: slot.location, count: size), to: bytes) }
            arena.release(slot.location, count: size)
            setLocation(location, at: index)
        }
    }

    // MARK: Enumeration

    /// Every stored key, in no particular order.
    var keys: [Key] { keys { _ in true } }

    /// Keys created after `revision` (by their create revision), in no particular order.
    func keys(createdAfter revision: UInt64) -> [Key] { keys { $0.createRevision > revision } }

    private func keys(where include: (RecordHeader) -> Bool) -> [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        let total = storage.slotCount + (draining?.slotCount ?? 0)
        for index in 0 ..< total where slot(at: index).keyLength != 0 {
            if include(header(at: index)) { keys.append(key(at: index)) }
        }
        return keys
    }
}
