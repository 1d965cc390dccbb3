/// The active-active metadata of every key (`ActiveActiveState.keys`): a map from key
/// to `ActiveActiveKeyState`, with the states kept out of line.
///
/// Why not `[Key: ActiveActiveKeyState]`: a key state is 256 bytes, and a dictionary
/// moves every entry, key and state, each time it grows. Under a stream of new keys
/// (a peer's backlog merged, `aegis-bench aa`'s drain) that re-hashing and moving was
/// 17 % of the whole process's samples. Here the dictionary holds a slot number (an
/// entry is the 32-byte key and 8 bytes), the states sit in one array that grows by
/// moving its bytes in bulk, and a removed key's slot is reused by the next new key.
/// It is a value type with the dictionary's semantics (copy on write, equality by
/// content): a snapshot copy of the state machine is unaffected by later writes.
struct ActiveActiveKeyTable: Sendable {
    /// Key → position in `states`.
    private var slots: [Key: Int] = [:]
    /// The states; a free position holds an empty placeholder.
    private var states: ContiguousArray<ActiveActiveKeyState> = []
    /// Positions of `states` no key uses.
    private var free: [Int] = []

    /// An empty table.
    init() {}

    /// The number of keys.
    var count: Int { slots.count }

    /// `true` when no key has metadata.
    var isEmpty: Bool { slots.isEmpty }

    /// The keys, in no particular order.
    var keys: Dictionary<Key, Int>.Keys { slots.keys }

    /// The states, in no particular order.
    var values: [ActiveActiveKeyState] { slots.values.map { states[$0] } }

    /// A key's state; assigning `nil` removes it.
    subscript(key: Key) -> ActiveActiveKeyState? {
        get { slots[key].map { states[$0] } }
        set {
            guard let newValue else {
                if let slot = slots.removeValue(forKey: key) {
                    states[slot] = ActiveActiveKeyState(key: key)  // drops the parts' storage
                    free.append(slot)
                }
                return
            }
            if let slot = slots[key] {
                states[slot] = newValue
            } else if let slot = free.popLast() {
                states[slot] = newValue
                slots[key] = slot
            } else {
                slots[key] = states.count
                states.append(newValue)
            }
        }
    }
}

extension ActiveActiveKeyTable: Sequence {
    /// Every key with its state, in no particular order.
    func makeIterator() -> some IteratorProtocol<(key: Key, value: ActiveActiveKeyState)> {
        let states = self.states
        return slots.lazy.map { (key: $0.key, value: states[$0.value]) }.makeIterator()
    }
}

extension ActiveActiveKeyTable: Equatable {
    /// Equal when the same keys have the same states (where they sit does not matter).
    static func == (lhs: ActiveActiveKeyTable, rhs: ActiveActiveKeyTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, slot) in lhs.slots where rhs[key] != lhs.states[slot] { return false }
        return true
    }
}
