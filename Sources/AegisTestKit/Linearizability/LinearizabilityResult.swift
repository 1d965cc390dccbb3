/// Why the checker could not place the operations of one key in any legal order:
/// the longest linearization it found, and the operation that could not follow it.
public struct LinearizabilityViolation: Sendable, Hashable, CustomStringConvertible {
    /// The register.
    public var key: UInt64
    /// The longest prefix the search linearized, in linearization order.
    public var linearizedPrefix: [OperationID]
    /// The register's value after that prefix.
    public var valueAfterPrefix: UInt64?
    /// The operation that had to take effect next (it completed before every other
    /// remaining operation was invoked or completed) but could not.
    public var blocking: OperationID
    /// The operations that could have come next at that point; none of them led to
    /// a linearization (each was illegal in that state or a dead end already explored).
    public var candidates: [OperationID]
    /// The operations of this key the checker considered (ok and info), for reports.
    public var operations: [RegisterOperation]

    /// Creates a violation report.
    public init(
        key: UInt64, linearizedPrefix: [OperationID], valueAfterPrefix: UInt64?,
        blocking: OperationID, candidates: [OperationID], operations: [RegisterOperation]
    ) {
        self.key = key
        self.linearizedPrefix = linearizedPrefix
        self.valueAfterPrefix = valueAfterPrefix
        self.blocking = blocking
        self.candidates = candidates
        self.operations = operations
    }

    /// A short explanation naming the operations involved.
    public var description: String {
        func line(_ id: OperationID) -> String {
            operations.first { $0.id == id }.map { "\($0)" } ?? "\(id)"
        }
        let prefix = linearizedPrefix.map(\.description).joined(separator: " ")
        var text = "key \(key): after linearizing [\(prefix)] (value \(show(valueAfterPrefix))), "
        text += "\(line(blocking)) must take effect next but no candidate fits:"
        for id in candidates { text += "\n  \(line(id))" }
        return text
    }
}

/// Why the checker gave no answer for a key. Callers should treat it as a failure.
public enum LinearizabilityUnknownReason: Sendable, Hashable, CustomStringConvertible {
    /// The search explored `maxStates` states without deciding.
    case budgetExhausted(statesExplored: Int)
    /// An operation is inconsistent (an ok operation without a completion time, or
    /// one that completes before it is invoked).
    case malformed(OperationID, String)

    public var description: String {
        switch self {
        case .budgetExhausted(let explored): "gave up after exploring \(explored) states"
        case .malformed(let id, let why): "malformed operation \(id): \(why)"
        }
    }
}

/// The verdict for one key.
public enum LinearizabilityVerdict: Sendable, Hashable {
    /// Some order of the operations, consistent with real time, is legal.
    case linearizable
    /// No such order exists.
    case notLinearizable(LinearizabilityViolation)
    /// The checker could not decide.
    case unknown(LinearizabilityUnknownReason)
}

/// The outcome of checking a history: a verdict per key.
public struct LinearizabilityResult: Sendable, Hashable, CustomStringConvertible {
    /// The verdict for every key that has at least one operation.
    public var verdicts: [UInt64: LinearizabilityVerdict]
    /// States the search memoized over all keys (a measure of the work done).
    public var statesExplored: Int

    /// Creates a result.
    public init(verdicts: [UInt64: LinearizabilityVerdict], statesExplored: Int) {
        self.verdicts = verdicts
        self.statesExplored = statesExplored
    }

    /// `true` when every key is linearizable (an unknown key counts as not).
    public var isLinearizable: Bool {
        verdicts.values.allSatisfy { $0 == .linearizable }
    }

    /// The violations, by ascending key.
    public var violations: [LinearizabilityViolation] {
        verdicts.keys.sorted().compactMap {
            if case .notLinearizable(let violation) = verdicts[$0] { return violation }
            return nil
        }
    }

    /// The undecided keys and why, by ascending key.
    public var unknownKeys: [(key: UInt64, reason: LinearizabilityUnknownReason)] {
        verdicts.keys.sorted().compactMap {
            if case .unknown(let reason) = verdicts[$0] { return ($0, reason) }
            return nil
        }
    }

    /// `linearizable (n keys)`, or one paragraph per failing key.
    public var description: String {
        if isLinearizable { return "linearizable (\(verdicts.count) keys)" }
        let unknown = unknownKeys.map { "key \($0.key): unknown: \($0.reason)" }
        return (violations.map(\.description) + unknown).joined(separator: "\n")
    }
}
