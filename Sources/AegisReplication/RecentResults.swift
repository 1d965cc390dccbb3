import AegisKV
import AegisRaft

/// The results of the last `capacity` applied indices (index → term, result), so a
/// write whose index was applied before its waiter registered still gets its answer.
///
/// A ring indexed by `index % capacity`: recording index `i` replaces whatever shares
/// its slot (at most `i - capacity`); an older result can linger in a slot no later
/// command took, and a lookup checks the stored index, so it is only ever answered with
/// its own result. No hashing and no allocation per entry (a
/// dictionary's insert and removal per applied entry were about a fifth of a restart's
/// replay).
struct RecentResults {
    /// How many indices are remembered (4,096).
    static let capacity = 4_096

    private var slots = ContiguousArray<(index: LogIndex, term: Term, result: CommandResult)?>(
        repeating: nil, count: RecentResults.capacity)

    /// The term and result recorded for `index`, if it is still in the window.
    subscript(index: LogIndex) -> (term: Term, result: CommandResult)? {
        guard let slot = slots[Self.slot(of: index)], slot.index == index else { return nil }
        return (slot.term, slot.result)
    }

    /// Records the result of the command applied at `index`.
    mutating func record(_ index: LogIndex, term: Term, result: CommandResult) {
        slots[Self.slot(of: index)] = (index, term, result)
    }

    /// Forgets everything (the state machine was replaced by a snapshot).
    mutating func removeAll() {
        for slot in slots.indices { slots[slot] = nil }
    }

    private static func slot(of index: LogIndex) -> Int { Int(truncatingIfNeeded: index % UInt64(capacity)) }
}
