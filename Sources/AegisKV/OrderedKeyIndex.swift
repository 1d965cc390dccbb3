/// The keys of the store in ascending order, maintained lazily.
///
/// Writes only record what changed: a created key is appended to `pending` (one
/// reference, no copy of the key's bytes) and a removal sets a flag. The first
/// ordered read afterwards calls `refresh(live:)`, which drops removed keys from
/// `sorted` (one pass, O(n) hash lookups), sorts `pending` (O(p log p)) and merges the
/// two (O(n + p)). A key removed and created again may sit in both lists; the merge
/// keeps one copy. The trade-off against a B-tree: point writes stay a plain hash
/// insert, and a bulk load followed by reads pays one sort; a workload alternating one
/// write with one ordered read pays O(n) per read.
@usableFromInline struct OrderedKeyIndex: Sendable {
    /// Keys in strictly ascending order as of the last refresh; may include keys
    /// removed since.
    @usableFromInline var sorted: [Key] = []
    /// Keys created since the last refresh, in creation order; may include keys
    /// removed since, and duplicates.
    @usableFromInline var pending: [Key] = []
    /// `true` if any key was removed since the last refresh.
    @usableFromInline var hasRemovals = false

    @inlinable init() {}

    /// Creates an index that is already current for `sortedKeys`.
    init(sortedKeys: [Key]) { self.sorted = sortedKeys }

    /// Records that `key` was created.
    @inlinable mutating func noteInserted(_ key: Key) { pending.append(key) }

    /// Records that some key was removed.
    @inlinable mutating func noteRemoved() { hasRemovals = true }

    /// `true` when `sorted` is exactly the live keys.
    var isCurrent: Bool { pending.isEmpty && !hasRemovals }

    /// Brings `sorted` up to date with the live keys.
    mutating func refresh<Value>(live: [Key: Value]) {
        guard !isCurrent else { return }
        sorted = refreshed(live: live)
        pending = []
        hasRemovals = false
    }

    /// The live keys in ascending order, computed without changing the index.
    func refreshed<Value>(live: [Key: Value]) -> [Key] {
        if isCurrent { return sorted }
        if sorted.isEmpty && !hasRemovals && pending.count == live.count {
            return pending.sorted()  // bulk load: no merge needed
        }
        let old = hasRemovals ? sorted.filter { live[$0] != nil } : sorted
        let new = pending.filter { live[$0] != nil }.sorted()
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

    /// The key's record, or `nil` if it does not exist.
    public func get(_ key: Key) -> KeyValue? {
        guard let stored = entries[key] else { return nil }
        return KeyValue(key: key, value: stored.value, version: stored.version,
                        createRevision: stored.createRevision, modRevision: stored.modRevision)
    }

    /// The key's value, or `nil` if it does not exist.
    public func value(for key: Key) -> [UInt8]? { entries[key]?.value }

    /// Records with `start <= key < end`, in ascending key order, at most `limit` of
    /// them. `nil` bounds are open. Mutating only because it brings the lazily
    /// maintained key order up to date (see the type's documentation).
    public mutating func range(from start: Key? = nil, to end: Key? = nil, limit: Int = .max) -> [KeyValue] {
        orderedKeys.refresh(live: entries)
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
        orderedKeys.refresh(live: entries)
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
        orderedKeys.refresh(live: entries)
        return orderedKeys.sorted
    }
}
