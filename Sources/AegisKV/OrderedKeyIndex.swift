/// The keys of the store in ascending order, maintained lazily.
///
/// Writes record nothing but a flag: a key created since the last refresh is
/// recognisable by its create revision, which is above `indexedRevision`. The first
/// ordered read after writes calls `refresh(live:)`, which drops removed keys from
/// `sorted` (one pass of hash lookups, only if something was removed), collects the
/// new keys with one scan of the table, sorts them (O(p log p)) and merges the two
/// (O(n + p)). A key removed and created again sits in both lists; the merge keeps one
/// copy.
///
/// The trade-off against a B-tree: point writes stay one hash probe with no extra
/// allocation, and a bulk load followed by reads pays one sort; a workload that
/// alternates single writes with ordered reads pays O(n) per read. The sorted array
/// costs 32 bytes per key once an ordered read (or a restore) has built it.
@usableFromInline struct OrderedKeyIndex: Sendable {
    /// Keys in strictly ascending order as of `indexedRevision`; may include keys
    /// removed since.
    var sorted: [Key] = []
    /// The store revision `sorted` reflects.
    var indexedRevision: UInt64 = 0
    /// `true` if a key was created since the last refresh.
    @usableFromInline var hasCreations = false
    /// `true` if a key was removed since the last refresh.
    @usableFromInline var hasRemovals = false

    init() {}

    /// Creates an index that is current for `sortedKeys` at `revision`.
    init(sortedKeys: [Key], revision: UInt64) {
        self.sorted = sortedKeys
        self.indexedRevision = revision
    }

    /// Records that a key was created.
    @inlinable mutating func noteCreated() { hasCreations = true }

    /// Records that some key was removed.
    @inlinable mutating func noteRemoved() { hasRemovals = true }

    /// `true` when `sorted` is exactly the live keys.
    var isCurrent: Bool { !hasCreations && !hasRemovals }

    /// Brings `sorted` up to date with the live keys at store revision `revision`.
    mutating func refresh(live: KVTable, revision: UInt64) {
        guard !isCurrent else { return }
        sorted = refreshed(live: live)
        indexedRevision = revision
        hasCreations = false
        hasRemovals = false
    }

    /// The live keys in ascending order, computed without changing the index.
    func refreshed(live: KVTable) -> [Key] {
        if isCurrent { return sorted }
        let new = hasCreations ? live.keys(createdAfter: indexedRevision).sorted() : []
        if sorted.isEmpty { return new }
        let old = hasRemovals ? sorted.filter { live.contains($0) } : sorted
        var merged: [Key] = []
        merged.reserveCapacity(live.count)
        var i = 0, j = 0
        func append(_ key: Key) { if merged.last != key { merged.append(key) } }
        while i < old.count && j < new.count {
            if old[i] < new[j] { append(old[i]); i += 1 } else { append(new[j]); j += 1 }
        }
        while i < old.count { append(old[i]); i += 1 }
        while j < new.count { append(new[j]); j += 1 }
        return merged
    }
}

/// The position of the first key in `keys` (ascending) that is not less than `key`.
func lowerBound(of key: Key, in keys: [Key]) -> Int {
    var low = 0, high = keys.count
    while low < high {
        let middle = low + (high - low) / 2
        if keys[middle] < key { low = middle + 1 } else { high = middle }
    }
    return low
}

extension StateMachine {
    // MARK: Reads (local, not through the log)

    /// The key's record, or `nil` if it does not exist or its deadline is at or before
    /// the apply clock (see `get(_:now:)` for a reader's time). For a set or hash the
    /// record has its type and versions and an empty value.
    public func get(_ key: Key) -> KeyValue? {
        if !expiry.isEmpty && isExpired(key) { return nil }
        if !collections.isEmpty, let collection = collections[key] {
            return KeyValue(key: key, value: [], version: collection.version, createRevision: collection.createRevision,
                            modRevision: collection.modRevision, type: collection.value.type)
        }
        guard let stored = entries[key] else { return nil }
        return KeyValue(key: key, value: stored.value, version: stored.version,
                        createRevision: stored.createRevision, modRevision: stored.modRevision)
    }

    /// The key's value, or `nil` if it does not exist.
    public func value(for key: Key) -> [UInt8]? {
        if !expiry.isEmpty && isExpired(key) { return nil }
        return entries.find(key).map { entries.value(at: $0) }
    }

    /// Records with `start <= key < end`, in ascending key order, at most `limit` of
    /// them. `nil` bounds are open. Mutating only because it brings the lazily
    /// maintained key order up to date (see the type's documentation).
    public mutating func range(from start: Key? = nil, to end: Key? = nil, limit: Int = .max) -> [KeyValue] {
        orderedKeys.refresh(live: entries, revision: revision)
        let keys = orderedKeys.sorted
        var position = start.map { lowerBound(of: $0, in: keys) } ?? 0
        var records: [KeyValue] = []
        while position < keys.count && records.count < limit {
            let key = keys[position]
            if let end, !(key < end) { break }
            if let record = get(key) { records.append(record) }
            position += 1
        }
        return records
    }

    /// Records whose key starts with `prefix`, in ascending key order, at most `limit`.
    public mutating func scan(prefix: Key, limit: Int = .max) -> [KeyValue] {
        orderedKeys.refresh(live: entries, revision: revision)
        let keys = orderedKeys.sorted
        var position = lowerBound(of: prefix, in: keys)
        var records: [KeyValue] = []
        while position < keys.count && records.count < limit && keys[position].hasPrefix(prefix) {
            if let record = get(keys[position]) { records.append(record) }
            position += 1
        }
        return records
    }

    /// Every key in ascending order.
    public mutating func sortedKeys() -> [Key] {
        orderedKeys.refresh(live: entries, revision: revision)
        return orderedKeys.sorted
    }
}
