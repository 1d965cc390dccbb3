/// When a key expires, as a command gives it.
///
/// A relative time is resolved when the entry is applied, against the apply clock
/// (`StateMachine.expiryClock`: the highest leader timestamp applied so far), never
/// against a replica's own clock: every replica computes the same deadline from the
/// log alone.
public enum ExpiryTime: Sendable, Hashable {
    /// This many milliseconds after the entry's apply clock (`EXPIRE`, `SET … PX`).
    /// Zero or negative means already expired.
    case after(milliseconds: Int64)
    /// This many milliseconds since the Unix epoch (`EXPIREAT`, `SET … PXAT`). At or
    /// before the apply clock means already expired.
    case at(milliseconds: Int64)
}

/// The `NX`, `XX`, `GT` and `LT` options of `EXPIRE` (Redis 7): when a new deadline
/// is set. A key without a deadline counts as an infinite one for `GT` and `LT`.
public enum ExpireCondition: UInt8, Sendable, Hashable, CaseIterable {
    /// Always.
    case always = 0
    /// Only if the key has no deadline.
    case ifNone = 1
    /// Only if the key has a deadline.
    case ifSome = 2
    /// Only if the new deadline is later than the current one.
    case ifGreater = 3
    /// Only if the new deadline is earlier than the current one.
    case ifLess = 4
    /// Only if the key has a deadline and the new one is earlier (`XX` with `LT`).
    case ifSomeAndLess = 5
}

/// What a write does to the key's deadline.
public enum ExpiryChange: Sendable, Hashable {
    /// Remove it (`SET` without options, `GETEX … PERSIST`).
    case clear
    /// Keep it (`SET … KEEPTTL`, `GETEX` without options).
    case keep
    /// Set a new one (`SET … EX`, `GETEX … PX`, `SETEX`).
    case set(ExpiryTime)
}

/// When `Command.setWith` writes.
public enum SetCondition: Sendable, Hashable {
    /// Always (`SET`).
    case always
    /// Only if the key does not exist (`SET … NX`).
    case ifAbsent
    /// Only if the key exists (`SET … XX`).
    case ifPresent
    /// Only if the key is a string holding exactly these bytes (`SET … IFEQ`).
    case ifEqual([UInt8])
}

/// The deadlines of the keys that have one (Redis's `expires` dictionary), kept apart
/// from the key table so that the table's layout is unchanged.
///
/// Invariant: every key in `deadlines` exists in the store (the state machine removes
/// a key's deadline whenever it removes or overwrites the key), so the memory is
/// bounded by the key count. `heap` orders the deadlines for the leader's purge
/// (`due(at:limit:)`); an entry whose deadline no longer matches `deadlines` is stale
/// and skipped, and the heap is rebuilt when stale entries outnumber live ones, so it
/// holds at most `2 × deadlines.count + 64` entries.
struct ExpiryIndex: Sendable, Equatable {
    /// Deadline (milliseconds since the Unix epoch) by key.
    private(set) var deadlines: [Key: UInt64] = [:]
    /// A binary min-heap of (deadline, key); may hold stale entries.
    private var heap: [HeapEntry] = []

    struct HeapEntry: Sendable, Equatable {
        var deadline: UInt64
        var key: Key
    }

    static func == (lhs: ExpiryIndex, rhs: ExpiryIndex) -> Bool { lhs.deadlines == rhs.deadlines }

    /// The number of keys with a deadline.
    var count: Int { deadlines.count }
    var isEmpty: Bool { deadlines.isEmpty }

    /// The key's deadline, or `nil`.
    func deadline(of key: Key) -> UInt64? { deadlines.isEmpty ? nil : deadlines[key] }

    /// Sets the key's deadline.
    mutating func set(_ key: Key, deadline: UInt64) {
        deadlines[key] = deadline
        push(HeapEntry(deadline: deadline, key: key))
        if heap.count > 2 * deadlines.count + 64 { rebuild() }
    }

    /// Removes the key's deadline; `true` if it had one.
    @discardableResult mutating func remove(_ key: Key) -> Bool {
        guard !deadlines.isEmpty, deadlines.removeValue(forKey: key) != nil else { return false }
        if deadlines.isEmpty { heap.removeAll() }
        return true
    }

    /// Removes every deadline.
    mutating func removeAll() {
        deadlines.removeAll()
        heap.removeAll()
    }

    /// Up to `limit` keys whose deadline is at or before `now`, earliest first (at
    /// least one when the earliest deadline is due). Drops the stale entries at the top
    /// of the heap, then walks the heap best-first (a frontier ordered by deadline), so
    /// entries come out in deadline order; at most `4 × limit + 64` entries are visited,
    /// which bounds the work when stale entries sit among the due ones.
    mutating func due(at now: UInt64, limit: Int) -> [Key] {
        while let top = heap.first, deadlines[top.key] != top.deadline { popTop() }
        guard limit > 0, let first = heap.first, first.deadline <= now else { return [] }
        var keys: [Key] = []
        var seen = Set<Key>()
        // Heap positions by descending deadline: the last is the earliest.
        var frontier = [0]
        var visited = 0
        while keys.count < limit, visited < 4 * limit + 64, let position = frontier.popLast() {
            visited += 1
            let entry = heap[position]
            guard entry.deadline <= now else { continue }  // its children are no earlier
            if deadlines[entry.key] == entry.deadline, seen.insert(entry.key).inserted { keys.append(entry.key) }
            for child in [2 * position + 1, 2 * position + 2] where child < heap.count {
                let deadline = heap[child].deadline
                var low = 0, high = frontier.count
                while low < high {
                    let middle = (low + high) / 2
                    if heap[frontier[middle]].deadline > deadline { low = middle + 1 } else { high = middle }
                }
                frontier.insert(child, at: low)
            }
        }
        return keys
    }

    /// Replaces the content with `deadlines` (a snapshot restore).
    init(deadlines: [Key: UInt64] = [:]) {
        self.deadlines = deadlines
        rebuild()
    }

    /// Rebuilds the heap from `deadlines`, dropping stale entries.
    private mutating func rebuild() {
        heap = deadlines.map { HeapEntry(deadline: $0.value, key: $0.key) }
        guard heap.count > 1 else { return }
        for position in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(position) }
    }

    private mutating func push(_ entry: HeapEntry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        guard let last = heap.popLast() else { return }
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
