/// Checks register histories for linearizability (Herlihy & Wing): whether every
/// operation can be given a single instant between its invocation and completion
/// such that, in the order of those instants, each read returns the latest value
/// written and each compare-and-set behaves as recorded.
///
/// The history is split per key (linearizability is compositional, so a history is
/// linearizable exactly when each key's sub-history is), and each key is searched
/// with the Wing & Gong algorithm as improved by Lowe (just-in-time linearization,
/// memoizing every (set of linearized operations, register value) already explored),
/// the approach of Porcupine.
///
/// Semantics of the statuses:
/// - `.ok`: took effect exactly once, between `invokeTime` and `completeTime`.
/// - `.fail`: did not take effect; ignored.
/// - `.info`: may take effect at any time after `invokeTime`, or never (its
///   completion is at infinity). An info read constrains nothing and is dropped.
///
/// Operations whose intervals touch (one completes at the very time another is
/// invoked) count as concurrent.
public enum LinearizabilityChecker {
    /// The default budget of memoized states per key.
    public static let defaultMaxStates = 1_000_000

    /// Checks `history` key by key, every register starting at `initialValue`
    /// (`nil`: absent). A key whose search would memoize more than `maxStates` states
    /// is reported `.unknown` rather than searched further; callers should treat that
    /// as a failure. A linearizable history usually needs about one state per
    /// operation; the budget bounds pathological ones (many concurrent operations and
    /// no order that works), whose memory grows with it (a state is a bitset of the
    /// key's operations and a value).
    public static func check(
        _ history: [RegisterOperation], initialValue: UInt64? = nil, maxStates: Int = defaultMaxStates
    ) -> LinearizabilityResult {
        var byKey: [UInt64: [RegisterOperation]] = [:]
        for operation in history { byKey[operation.key, default: []].append(operation) }
        var verdicts: [UInt64: LinearizabilityVerdict] = [:]
        var explored = 0
        for (key, operations) in byKey {
            let (verdict, states) = checkKey(key, operations, initialValue: initialValue, maxStates: maxStates)
            verdicts[key] = verdict
            explored += states
        }
        return LinearizabilityResult(verdicts: verdicts, statesExplored: explored)
    }

    /// Checks the operations of one key; returns the verdict and the states memoized.
    static func checkKey(
        _ key: UInt64, _ operations: [RegisterOperation], initialValue: UInt64?, maxStates: Int
    ) -> (LinearizabilityVerdict, Int) {
        var kept: [RegisterOperation] = []
        var effects: [RegisterEffect] = []
        for operation in operations {
            if let problem = malformation(of: operation) {
                return (.unknown(.malformed(operation.id, problem)), 0)
            }
            guard let effect = RegisterEffect(operation) else { continue }
            kept.append(operation)
            effects.append(effect)
        }
        var search = LinearizationSearch(operations: kept, effects: effects)
        let outcome = search.run(initialValue: initialValue, maxStates: maxStates)
        switch outcome {
        case .linearizable:
            return (.linearizable, search.statesExplored)
        case .budgetExhausted:
            return (.unknown(.budgetExhausted(statesExplored: search.statesExplored)), search.statesExplored)
        case .violation(let deepest):
            let violation = LinearizabilityViolation(
                key: key,
                linearizedPrefix: deepest.prefix.map { kept[$0].id },
                valueAfterPrefix: deepest.value,
                blocking: kept[deepest.blocking].id,
                candidates: deepest.candidates.map { kept[$0].id },
                operations: kept)
            return (.notLinearizable(violation), search.statesExplored)
        }
    }

    /// Why an operation the checker must consider is inconsistent, or `nil`.
    static func malformation(of operation: RegisterOperation) -> String? {
        guard operation.status == .ok else { return nil }
        guard let completed = operation.completeTime else { return "ok without a completion time" }
        guard completed >= operation.invokeTime else { return "completes before it is invoked" }
        return nil
    }
}

/// What linearizing one operation does to the register, and when it is legal.
enum RegisterEffect {
    /// Legal when the register holds the value; changes nothing.
    case read(UInt64?)
    /// Always legal; sets the value.
    case write(UInt64?)
    /// Legal when the register holds `expected`; sets `new`. (An info compare-and-set
    /// that finds another value is indistinguishable from one that never happened,
    /// so only its swapping form is searched.)
    case swap(expected: UInt64?, new: UInt64?)
    /// Legal when the register does not hold `expected`; changes nothing.
    case mismatch(expected: UInt64?)

    /// The effect of an ok or info operation; `nil` for operations that constrain
    /// nothing (failed ones and info reads).
    init?(_ operation: RegisterOperation) {
        switch (operation.status, operation.kind) {
        case (.fail, _), (.info, .read): return nil
        case (.ok, .read): self = .read(operation.output)
        case (_, .write): self = .write(operation.value)
        case (.ok, .compareAndSet) where !operation.swapped: self = .mismatch(expected: operation.expected)
        case (_, .compareAndSet): self = .swap(expected: operation.expected, new: operation.value)
        }
    }

    /// Applies the effect to `value`; returns `false` (leaving it) if illegal there.
    func apply(to value: inout UInt64?) -> Bool {
        switch self {
        case .read(let seen): return value == seen
        case .write(let new):
            value = new
            return true
        case .swap(let expected, let new):
            guard value == expected else { return false }
            value = new
            return true
        case .mismatch(let expected): return value != expected
        }
    }
}
