import AegisCRDT

/// The active-active metadata of every key (`ActiveActiveState.keys`), kept in two
/// forms.
///
/// - A **plain** record is the metadata of the commonest key: a live last-writer-wins
///   string with no counters and no concurrent versions, and no set or hash part. Only
///   its stamp is kept (32 bytes): the value is the one the key-value table holds. The
///   state machine stores a key this way only when the table holds exactly the
///   register's value (`StateMachine.setActiveActiveMetadata`), and every write of
///   the table on an active-active cluster rewrites the key's metadata after it, so
///   the two never disagree. Reading a plain record back into a whole state takes the
///   value from the table (`state(of:value:)`).
/// - A **full** record is any other state (tombstones, counters, versions, sets,
///   hashes), whole.
///
/// Why not `[Key: ActiveActiveKeyState]`: a key state is 256 bytes, and a dictionary
/// moves every entry, key and state, each time it grows; and the string part held a
/// second copy of the value the table already holds (an allocation and a copy per
/// write per node). Here a `KeySlotMap` holds a slot number per key, the records sit
/// in two arrays that grow by moving their bytes in bulk, and a removed key's slot is
/// reused by the next new key of its form. It is a
/// value type with the dictionary's semantics (copy on write, equality by content): a
/// snapshot copy of the state machine is unaffected by later writes.
struct ActiveActiveKeyTable: Sendable {
    /// A key's stored metadata.
    enum Record: Sendable, Equatable {
        /// A live LWW string whose value the key-value table holds: only its stamp.
        case plain(HLCTimestamp)
        /// Any other state, whole.
        case full(ActiveActiveKeyState)
    }

    /// Key → slot: `n >= 0` is `full[n]`, `n < 0` is `plain[~n]`.
    private var slots = KeySlotMap()
    /// The full states; a free position holds an empty placeholder.
    private var full: ContiguousArray<ActiveActiveKeyState> = []
    /// The plain records' stamps.
    private var plain: ContiguousArray<HLCTimestamp> = []
    /// Positions of `full` no key uses.
    private var freeFull: [Int] = []
    /// Positions of `plain` no key uses.
    private var freePlain: [Int] = []

    /// An empty table.
    init() {}

    /// The number of keys.
    var count: Int { slots.count }

    /// `true` when no key has metadata.
    var isEmpty: Bool { slots.isEmpty }

    /// The keys, in no particular order.
    var keys: [Key] { slots.keys }

    /// The stamp a state would be kept under as a plain record, or `nil` when it must
    /// be kept whole (the caller still checks that the table holds its value).
    static func plainStamp(of state: ActiveActiveKeyState) -> HLCTimestamp? {
        guard state.set == nil, state.hash == nil, let string = state.string, string.value != nil,
              string.counters.isEmpty, string.versions == nil, string.context.isEmpty else { return nil }
        return string.stamp
    }

    /// A key's record, or `nil` when it has no metadata.
    func record(_ key: Key) -> Record? {
        slots[key].map(record(at:))
    }

    /// The record a slot points at.
    private func record(at slot: Int) -> Record {
        slot >= 0 ? .full(full[slot]) : .plain(plain[~slot])
    }

    /// Loads the buckets and entries of `keys` with the loads of different keys
    /// overlapping (see `KeySlotMap.touch`); returns how many hashes matched.
    func touch(_ keys: [Key]) -> Int { slots.touch(keys) }

    /// A key's lookup: its record, and where the table keeps it (for `setPlain`).
    struct Lookup {
        /// The record, `nil` when the key has no metadata.
        var record: Record?
        fileprivate var found: KeySlotMap.Found
    }

    /// Looks a key up once for reading its record and then storing a plain one.
    func lookup(_ key: Key) -> Lookup {
        let found = slots.find(key)
        return Lookup(record: found.slot.map(record(at:)), found: found)
    }

    /// Stores a plain record for `key`, `found` being its `lookup` with no change of
    /// the table since (what `set(key, .plain(stamp))` does, without looking it up again).
    mutating func setPlain(_ key: Key, _ stamp: HLCTimestamp, found lookup: Lookup) {
        switch lookup.found.slot {
        case let slot? where slot < 0:
            plain[~slot] = stamp
        case nil:
            slots.insert(~place(stamp), for: key, at: lookup.found)
        case _?:
            set(key, .plain(stamp))
        }
    }

    /// A key's full record, or `nil` when it has none or a plain one.
    func fullState(_ key: Key) -> ActiveActiveKeyState? {
        guard let slot = slots[key], slot >= 0 else { return nil }
        return full[slot]
    }

    /// A key's metadata as a whole state: a plain record's value is `value(key)` (what
    /// the key-value table holds; `nil` there makes it a deleted string).
    func state(of key: Key, value: (Key) -> [UInt8]?) -> ActiveActiveKeyState? {
        guard let slot = slots[key] else { return nil }
        if slot >= 0 { return full[slot] }
        return ActiveActiveKeyState(key: key, string: ActiveActiveString(stamp: plain[~slot], value: value(key)))
    }

    /// Stores `record` for `key`; `nil` removes the key's metadata.
    mutating func set(_ key: Key, _ record: Record?) {
        let old = slots[key]
        switch (old, record) {
        case (nil, nil):
            return
        case (let slot?, nil):
            slots.remove(key)
            release(slot, key: key)
        case (let slot?, .plain(let stamp)?) where slot < 0:
            plain[~slot] = stamp
        case (let slot?, .full(let state)?) where slot >= 0:
            full[slot] = state
        case (_, .plain(let stamp)?):
            if let old { release(old, key: key) }
            slots.set(~place(stamp), for: key)
        case (_, .full(let state)?):
            if let old { release(old, key: key) }
            if let position = freeFull.popLast() {
                full[position] = state
                slots.set(position, for: key)
            } else {
                slots.set(full.count, for: key)
                full.append(state)
            }
        }
    }

    /// Puts a plain record in a free position of `plain` (or a new one); returns it.
    private mutating func place(_ stamp: HLCTimestamp) -> Int {
        if let position = freePlain.popLast() {
            plain[position] = stamp
            return position
        }
        plain.append(stamp)
        return plain.count - 1
    }

    /// Frees a slot no key points at any more.
    private mutating func release(_ slot: Int, key: Key) {
        if slot >= 0 {
            full[slot] = ActiveActiveKeyState(key: key)  // drops the parts' storage
            freeFull.append(slot)
        } else {
            freePlain.append(~slot)
        }
    }
}

extension ActiveActiveKeyTable: Sequence {
    /// Every key with its record, in no particular order.
    func makeIterator() -> some IteratorProtocol<(key: Key, record: Record)> {
        let table = self
        return slots.lazy.map { (key: $0.key, record: table.record(at: $0.slot)) }.makeIterator()
    }
}

extension ActiveActiveKeyTable: Equatable {
    /// Equal when the same keys have the same records (where they sit does not matter).
    static func == (lhs: ActiveActiveKeyTable, rhs: ActiveActiveKeyTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, record) in lhs where rhs.record(key) != record { return false }
        return true
    }
}
