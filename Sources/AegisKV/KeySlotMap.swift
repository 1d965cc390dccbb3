/// A map from key to a slot number, for `ActiveActiveKeyTable`: the keys with their
/// slots in a dense array, and an open-addressed index (linear probing, at most half
/// full) of each key's hash and position in it.
///
/// Why not `[Key: Int]`: a dictionary hashes every key with SipHash on every lookup
/// and again on every growth; under a stream of new keys (a peer's backlog merged)
/// that hashing and re-hashing was 15 % of `aegis-bench aa`'s drain. Here a key is
/// hashed once with the key-value table's hash (`Key.tableHash`, seeded per map so
/// crafted keys cannot be made to collide), its hash is kept in its bucket (a probe
/// reads an entry only when the hashes match), and growing rebuilds the index from
/// the buckets without touching a key. Removal moves the last entry into the hole,
/// so the dense array never has gaps.
///
/// A value type: copies share storage until one is written (copy on write).
struct KeySlotMap: Sendable {
    /// A key and its slot.
    struct Entry: Sendable {
        var key: Key
        var slot: Int
    }

    /// The entries, densely.
    private var entries: ContiguousArray<Entry> = []
    /// The buckets: `0` is empty, otherwise a key's hash (high 32 bits) and its
    /// position in `entries` plus one (low 32 bits), so a probe compares hashes without
    /// loading an entry. The count is a power of two (or zero), at least twice `count`.
    /// (Positions fit 32 bits: 2^32 - 2 keys would take over 300 GB here.)
    private var index: ContiguousArray<UInt64> = []
    /// The hash seed.
    private let seed = UInt64.random(in: .min ... .max)

    /// An empty map.
    init() {}

    /// The number of keys.
    var count: Int { entries.count }

    /// `true` when there is no key.
    var isEmpty: Bool { entries.isEmpty }

    /// The keys, in the dense array's order.
    var keys: [Key] { entries.map(\.key) }

    private func hash(_ key: Key) -> UInt32 { UInt32(truncatingIfNeeded: key.tableHash(seed: seed) >> 32) }

    private static func bucketValue(hash: UInt32, position: Int) -> UInt64 {
        UInt64(hash) << 32 | UInt64(truncatingIfNeeded: position + 1) & 0xFFFF_FFFF
    }

    private static func position(_ bucket: UInt64) -> Int { Int(truncatingIfNeeded: bucket & 0xFFFF_FFFF) - 1 }

    /// The bucket that holds `key`, or the empty bucket where it would go.
    private func bucket(of key: Key, hash: UInt32) -> (bucket: Int, position: Int?) {
        let mask = index.count - 1
        var bucket = Int(hash) & mask
        while true {
            let value = index[bucket]
            if value == 0 { return (bucket, nil) }
            if UInt32(truncatingIfNeeded: value >> 32) == hash {
                let position = Self.position(value)
                if entries[position].key == key { return (bucket, position) }
            }
            bucket = (bucket + 1) & mask
        }
    }

    /// The slot of `key`, or `nil`.
    subscript(key: Key) -> Int? { find(key).slot }

    /// Where a lookup found a key, or the bucket it would take.
    struct Found {
        /// The key's slot, `nil` when the key is not in the map.
        var slot: Int?
        fileprivate var hash: UInt32
        fileprivate var bucket: Int
        fileprivate var position: Int?
    }

    /// Looks `key` up, keeping what `insert(_:for:at:)` needs to add it.
    func find(_ key: Key) -> Found {
        let hash = hash(key)
        guard !index.isEmpty else { return Found(slot: nil, hash: hash, bucket: -1, position: nil) }
        let (bucket, position) = bucket(of: key, hash: hash)
        return Found(slot: position.map { entries[$0].slot }, hash: hash, bucket: bucket, position: position)
    }

    /// Adds `key` with `slot`, `found` being its `find` (which did not find it) with no
    /// change of the map since.
    mutating func insert(_ slot: Int, for key: Key, at found: Found) {
        if let position = found.position {
            entries[position].slot = slot
            return
        }
        var bucket = found.bucket
        if (entries.count + 1) * 2 > index.count || bucket < 0 {
            rebuildIndex(buckets: Swift.max(16, index.count * 2))
            bucket = self.bucket(of: key, hash: found.hash).bucket
        }
        index[bucket] = Self.bucketValue(hash: found.hash, position: entries.count)
        entries.append(Entry(key: key, slot: slot))
    }

    /// Loads the home buckets of `keys`, then the entries whose hashes match, each pass
    /// issuing its loads without waiting on the previous key's (so a following lookup
    /// of each key finds them cached). Returns how many home buckets matched.
    func touch(_ keys: [Key]) -> Int {
        guard !index.isEmpty else { return 0 }
        let mask = index.count - 1
        var homes = [UInt64](repeating: 0, count: keys.count)
        for (position, key) in keys.enumerated() {
            let hash = hash(key)
            let value = index[Int(hash) & mask]
            homes[position] = UInt32(truncatingIfNeeded: value >> 32) == hash ? value : 0
        }
        var matched = 0
        for value in homes where value != 0 {
            matched &+= entries[Self.position(value)].slot & 1 | 1
        }
        return matched
    }

    /// Sets the slot of `key` (adding the key when it is new).
    mutating func set(_ slot: Int, for key: Key) {
        insert(slot, for: key, at: find(key))
    }

    /// Removes `key`, returning its slot (`nil` when it was not there).
    @discardableResult
    mutating func remove(_ key: Key) -> Int? {
        guard !index.isEmpty else { return nil }
        let (hole, found) = bucket(of: key, hash: hash(key))
        guard let position = found else { return nil }
        let slot = entries[position].slot
        clearBucket(hole)
        // The last entry fills the position, and its bucket follows it.
        let last = entries.count - 1
        if position != last {
            let (lastBucket, _) = bucket(of: entries[last].key, hash: hash(entries[last].key))
            index[lastBucket] = Self.bucketValue(hash: UInt32(truncatingIfNeeded: index[lastBucket] >> 32), position: position)
            entries.swapAt(position, last)
        }
        entries.removeLast()
        return slot
    }

    /// Empties a bucket and moves back the entries after it that probed past it, so
    /// every key stays reachable from its home bucket without tombstones.
    private mutating func clearBucket(_ start: Int) {
        let mask = index.count - 1
        var hole = start
        var next = (hole + 1) & mask
        while index[next] != 0 {
            let home = Int(UInt32(truncatingIfNeeded: index[next] >> 32)) & mask
            // The entry at `next` may move to `hole` when its home is not in (hole, next].
            if (next - home) & mask >= (next - hole) & mask {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        index[hole] = 0
    }

    /// Rebuilds the index with `buckets` buckets from the kept hashes.
    private mutating func rebuildIndex(buckets: Int) {
        var fresh = ContiguousArray<UInt64>(repeating: 0, count: buckets)
        let mask = buckets - 1
        for value in index where value != 0 {
            var bucket = Int(UInt32(truncatingIfNeeded: value >> 32)) & mask
            while fresh[bucket] != 0 { bucket = (bucket + 1) & mask }
            fresh[bucket] = value
        }
        index = fresh
    }
}

extension KeySlotMap: Sequence {
    /// Every key with its slot, in the dense arrays' order.
    func makeIterator() -> some IteratorProtocol<(key: Key, slot: Int)> {
        entries.lazy.map { (key: $0.key, slot: $0.slot) }.makeIterator()
    }
}
