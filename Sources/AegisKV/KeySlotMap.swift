/// A map from key to a slot number, for `ActiveActiveKeyTable`: the keys, slots and
/// hashes in dense arrays, and an open-addressed index (linear probing, at most half
/// full) of positions in them.
///
/// Why not `[Key: Int]`: a dictionary hashes every key with SipHash on every lookup
/// and again on every growth; under a stream of new keys (a peer's backlog merged)
/// that hashing and re-hashing was 15 % of `aegis-bench aa`'s drain. Here a key is
/// hashed once with the key-value table's hash (`Key.tableHash`, seeded per map so
/// crafted keys cannot be made to collide), its hash is kept, and growing rebuilds
/// the index from the kept hashes without touching a key. Removal moves the last
/// entry into the hole, so the dense arrays never have gaps.
///
/// A value type: copies share storage until one is written (copy on write).
struct KeySlotMap: Sendable {
    /// The keys, densely.
    private(set) var keys: ContiguousArray<Key> = []
    /// `slots[i]` belongs to `keys[i]`.
    private var slots: ContiguousArray<Int> = []
    /// `hashes[i]` is `keys[i]`'s hash.
    private var hashes: ContiguousArray<UInt32> = []
    /// Positions in the dense arrays, `-1` for an empty bucket; the count is a power
    /// of two (or zero), at least twice `count`.
    private var index: ContiguousArray<Int> = []
    /// The hash seed.
    private let seed = UInt64.random(in: .min ... .max)

    /// An empty map.
    init() {}

    /// The number of keys.
    var count: Int { keys.count }

    /// `true` when there is no key.
    var isEmpty: Bool { keys.isEmpty }

    private func hash(_ key: Key) -> UInt32 { UInt32(truncatingIfNeeded: key.tableHash(seed: seed) >> 32) }

    /// The bucket that holds `key`, or the empty bucket where it would go.
    private func bucket(of key: Key, hash: UInt32) -> (bucket: Int, position: Int?) {
        let mask = index.count - 1
        var bucket = Int(hash) & mask
        while true {
            let position = Int(index[bucket])
            if position < 0 { return (bucket, nil) }
            if hashes[position] == hash && keys[position] == key { return (bucket, position) }
            bucket = (bucket + 1) & mask
        }
    }

    /// The slot of `key`, or `nil`.
    subscript(key: Key) -> Int? {
        guard !index.isEmpty else { return nil }
        return bucket(of: key, hash: hash(key)).position.map { slots[$0] }
    }

    /// Sets the slot of `key` (adding the key when it is new).
    mutating func set(_ slot: Int, for key: Key) {
        let hash = hash(key)
        if !index.isEmpty, let position = bucket(of: key, hash: hash).position {
            slots[position] = slot
            return
        }
        if (keys.count + 1) * 2 > index.count { rebuildIndex(buckets: Swift.max(16, index.count * 2)) }
        let free = bucket(of: key, hash: hash).bucket
        index[free] = keys.count
        keys.append(key)
        slots.append(slot)
        hashes.append(hash)
    }

    /// Removes `key`, returning its slot (`nil` when it was not there).
    @discardableResult
    mutating func remove(_ key: Key) -> Int? {
        guard !index.isEmpty else { return nil }
        let (hole, found) = bucket(of: key, hash: hash(key))
        guard let position = found else { return nil }
        let slot = slots[position]
        clearBucket(hole)
        // The last entry fills the position, and its bucket follows it.
        let last = keys.count - 1
        if position != last {
            let (lastBucket, _) = bucket(of: keys[last], hash: hashes[last])
            index[lastBucket] = position
            keys.swapAt(position, last)
            slots.swapAt(position, last)
            hashes.swapAt(position, last)
        }
        keys.removeLast()
        slots.removeLast()
        hashes.removeLast()
        return slot
    }

    /// Empties a bucket and moves back the entries after it that probed past it, so
    /// every key stays reachable from its home bucket without tombstones.
    private mutating func clearBucket(_ start: Int) {
        let mask = index.count - 1
        var hole = start
        var next = (hole + 1) & mask
        while index[next] >= 0 {
            let home = Int(hashes[index[next]]) & mask
            // The entry at `next` may move to `hole` when its home is not in (hole, next].
            if (next - home) & mask >= (next - hole) & mask {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        index[hole] = -1
    }

    /// Rebuilds the index with `buckets` buckets from the kept hashes.
    private mutating func rebuildIndex(buckets: Int) {
        index = ContiguousArray(repeating: -1, count: buckets)
        let mask = buckets - 1
        for (position, hash) in hashes.enumerated() {
            var bucket = Int(hash) & mask
            while index[bucket] >= 0 { bucket = (bucket + 1) & mask }
            index[bucket] = position
        }
    }
}

extension KeySlotMap: Sequence {
    /// Every key with its slot, in the dense arrays' order.
    func makeIterator() -> some IteratorProtocol<(key: Key, slot: Int)> {
        zip(keys, slots).lazy.map { (key: $0.0, slot: $0.1) }.makeIterator()
    }
}
