/// The store's hash table: open addressing with linear probing over a power-of-two
/// array of slots, each holding a key (16 bytes inline) and its stored value.
///
/// Why not `Dictionary<Key, StoredValue>`: a lookup there reads a bitmap, the key
/// array and then the key's heap buffer; here it reads one 64-byte slot, and keys up
/// to 16 bytes need no allocation at all. Removal uses backward-shift deletion (no
/// tombstones), so probe sequences never degrade. The hash is seeded per table, which
/// keeps crafted keys from colliding on purpose; slot order is never observable (every
/// ordered output goes through the sorted key index), so the seed does not make
/// replicas differ.
@usableFromInline struct KVTable: Sendable {
    @usableFromInline struct Slot: Sendable {
        @usableFromInline var key: Key
        @usableFromInline var stored: StoredValue
    }

    /// `nil` marks an empty slot (no reference counting, unlike an empty value).
    /// Invariant: `slots.count` is a power of two and `count <= slots.count * 3 / 4`.
    @usableFromInline var slots: ContiguousArray<Slot?>
    /// The number of occupied slots.
    @usableFromInline private(set) var count = 0
    @usableFromInline let seed: UInt64

    /// Creates an empty table with room for `minimumCapacity` keys.
    init(minimumCapacity: Int = 0, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.seed = seed
        slots = ContiguousArray(repeating: nil, count: Self.slotCount(for: minimumCapacity))
    }

    /// The smallest power-of-two slot count (at least 8) that holds `keys` keys.
    static func slotCount(for keys: Int) -> Int {
        var slots = 8
        while slots * 3 / 4 < keys { slots *= 2 }
        return slots
    }

    /// The slot holding `key`, or the empty slot where it would go.
    func probe(_ key: Key) -> (index: Int, found: Bool) {
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: key.tableHash(seed: seed)) & mask
        return slots.withUnsafeBufferPointer { buffer in
            while true {
                guard let slot = buffer[index] else { return (index, false) }
                if slot.key == key { return (index, true) }
                index = (index + 1) & mask
            }
        }
    }

    /// The value stored under `key`.
    subscript(key: Key) -> StoredValue? {
        guard key.length > 0 else { return nil }
        let (index, found) = probe(key)
        return found ? slots[index]?.stored : nil
    }

    /// `true` if `key` is stored.
    func contains(_ key: Key) -> Bool { key.length > 0 && probe(key).found }

    /// Reads and updates the value of `key` with one probe: `body` receives the current
    /// value (`nil` if absent) and leaves the new one (`nil` removes the key).
    /// Returns `true` if the key was created. `key` must not be empty.
    @discardableResult
    mutating func update(_ key: Key, _ body: (inout StoredValue?) -> Void) -> Bool {
        var (index, found) = probe(key)
        if found {
            var current = slots[index]?.stored
            body(&current)
            if let current { slots[index]?.stored = current } else { removeSlot(at: index) }
            return false
        }
        var created: StoredValue?
        body(&created)
        guard let created else { return false }
        if (count + 1) > slots.count * 3 / 4 {
            resize(to: slots.count * 2)
            index = probe(key).index
        }
        slots[index] = Slot(key: key, stored: created)
        count += 1
        return true
    }

    /// Removes `key`, returning its value.
    @discardableResult mutating func remove(_ key: Key) -> StoredValue? {
        guard key.length > 0 else { return nil }
        let (index, found) = probe(key)
        guard found else { return nil }
        let removed = slots[index]?.stored
        removeSlot(at: index)
        return removed
    }

    /// Empties slot `hole` and shifts later members of its probe run back so that
    /// every key stays reachable from its home slot.
    @usableFromInline mutating func removeSlot(at hole: Int) {
        let mask = slots.count - 1
        var hole = hole
        var next = hole
        while true {
            next = (next + 1) & mask
            guard let moving = slots[next] else { break }
            let home = Int(truncatingIfNeeded: moving.key.tableHash(seed: seed)) & mask
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let homeBetween = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeBetween {
                slots[hole] = moving
                hole = next
            }
        }
        slots[hole] = nil
        count -= 1
    }

    /// Makes room for `keys` keys without resizing again.
    mutating func reserveCapacity(_ keys: Int) {
        let needed = Self.slotCount(for: keys)
        if needed > slots.count { resize(to: needed) }
    }

    private mutating func resize(to slotCount: Int) {
        var old = ContiguousArray<Slot?>(repeating: nil, count: slotCount)
        swap(&old, &slots)
        let mask = slotCount - 1
        let seed = self.seed
        slots.withUnsafeMutableBufferPointer { buffer in
            old.withUnsafeMutableBufferPointer { oldBuffer in
                for position in oldBuffer.indices {
                    guard let slot = oldBuffer[position].take() else { continue }  // move, no retain
                    var index = Int(truncatingIfNeeded: slot.key.tableHash(seed: seed)) & mask
                    while buffer[index] != nil { index = (index + 1) & mask }
                    buffer[index] = slot
                }
            }
        }
    }

    /// Every stored key, in no particular order.
    var keys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        for case let slot? in slots { keys.append(slot.key) }
        return keys
    }

    /// Keys created after `revision` (by their create revision), in no particular order.
    func keys(createdAfter revision: UInt64) -> [Key] {
        var keys: [Key] = []
        for case let slot? in slots where slot.stored.createRevision > revision { keys.append(slot.key) }
        return keys
    }
}
