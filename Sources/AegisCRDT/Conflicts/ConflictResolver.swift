/// How a conflict ended.
public enum ConflictOutcome<Value: Sendable & Equatable>: Sendable, Equatable {
    /// One version won (last-write-wins, priority). Its clock is the join of all the
    /// versions' clocks, so it dominates every loser.
    case winner(Version<Value>)
    /// The strategy merged the values into this new version.
    case merged(Version<Value>)
    /// The versions were kept as siblings (vector-clock strategy).
    case siblingsKept([Version<Value>])
    /// A person or program chose this version with ``ConflictResolver/resolve(_:with:at:)``.
    case resolvedManually(Version<Value>)
    /// A later write that had seen every version replaced them before anyone resolved
    /// the conflict.
    case superseded(Version<Value>)
}

/// One line of the conflict audit trail.
public struct ConflictAuditEntry<Value: Sendable & Equatable>: Sendable, Equatable {
    /// What happened.
    public enum Event: Sendable, Equatable {
        /// Concurrent versions were found.
        case detected
        /// The conflict was resolved.
        case resolved(ConflictOutcome<Value>)
    }

    /// The position of this entry in the trail, from 1.
    public let sequence: UInt64
    /// The conflict the entry is about.
    public let conflict: ConflictID
    /// The key in conflict.
    public let key: String
    /// The concurrent versions, with their values, origins, clocks and timestamps.
    public let versions: [Version<Value>]
    /// The name of the strategy in force.
    public let strategy: String
    /// When it happened (the resolving replica's hybrid logical clock).
    public let time: HLCTimestamp
    /// What happened.
    public let event: Event
}

/// The result of reconciling an incoming version with the versions held for a key.
public struct Reconciliation<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The versions to store for the key from now on: one, or several siblings.
    public let versions: [Version<Value>]
    /// The conflict that was detected, if the versions were concurrent.
    public let conflict: ConflictID?
    /// How the conflict ended; `nil` when there was none, or when it awaits manual
    /// resolution.
    public let outcome: ConflictOutcome<Value>?
}

/// Detects conflicts between versions of a key by their vector clocks and resolves
/// them with a pluggable ``ConflictResolutionStrategy``, recording every detected
/// conflict and its resolution in an audit trail.
///
/// A version that happened before another is simply replaced (no conflict). Only
/// concurrent versions are a conflict.
public struct ConflictResolver<Value: Sendable & Equatable>: Sendable {
    /// The strategy in force.
    public let strategy: any ConflictResolutionStrategy<Value>
    /// The replica doing the resolving; manual resolutions are written as its events.
    public let origin: Origin
    /// Every detection and resolution, oldest first, until drained.
    public private(set) var auditTrail: [ConflictAuditEntry<Value>] = []
    private var pending: [ConflictID: Conflict<Value>] = [:]
    private var pendingByKey: [String: ConflictID] = [:]
    private var lastConflict: UInt64 = 0
    private var lastAudit: UInt64 = 0

    /// Creates a resolver for `origin` applying `strategy`.
    public init(strategy: any ConflictResolutionStrategy<Value>, origin: Origin) {
        self.strategy = strategy
        self.origin = origin
    }

    /// The conflicts awaiting manual resolution, oldest first.
    public var pendingConflicts: [Conflict<Value>] { pending.values.sorted { $0.id < $1.id } }

    /// Reconciles `incoming` with the versions currently held for `key`, at `time`.
    public mutating func reconcile(
        key: String, current: [Version<Value>], incoming: Version<Value>, at time: HLCTimestamp
    ) -> Reconciliation<Value> {
        let survivors = Self.concurrentFrontier(current + [incoming])
        guard survivors.count > 1, let merged = Self.joinedClock(of: survivors) else {
            supersedePending(key: key, by: survivors, at: time)
            return Reconciliation(versions: survivors, conflict: nil, outcome: nil)
        }
        lastConflict += 1
        let conflict = Conflict(id: ConflictID(lastConflict), key: key, versions: survivors, detectedAt: time)
        record(conflict, .detected, at: time)

        let outcome: ConflictOutcome<Value>
        switch strategy.resolve(survivors) {
        case .winner(let version):
            outcome = .winner(version.withClock(merged))
        case .merged(let value):
            let newest = survivors.map(\.timestamp).max() ?? time
            outcome = .merged(Version(value: value, clock: merged, origin: origin, timestamp: newest))
        case .keepSiblings:
            outcome = .siblingsKept(survivors)
        case .deferToManualResolution:
            if let previous = pendingByKey[key] { pending[previous] = nil }
            pending[conflict.id] = conflict
            pendingByKey[key] = conflict.id
            return Reconciliation(versions: survivors, conflict: conflict.id, outcome: nil)
        }
        record(conflict, .resolved(outcome), at: time)
        return Reconciliation(versions: outcome.versions, conflict: conflict.id, outcome: outcome)
    }

    /// Resolves a pending conflict with `value`, at `time`. The result is a new write
    /// of this resolver's replica that has seen every version in the conflict; store
    /// and replicate it.
    public mutating func resolve(_ id: ConflictID, with value: Value, at time: HLCTimestamp) throws(CRDTError) -> Version<Value> {
        guard let conflict = pending[id] else {
            throw CRDTError(.unknownConflict, "\(id) is not pending; list pending conflicts with `pendingConflicts` (it may have been resolved or superseded)")
        }
        var clock = Self.joinedClock(of: conflict.versions) ?? VectorClock()
        try clock.increment(origin.replica)
        let version = Version(value: value, clock: clock, origin: origin, timestamp: time)
        pending[id] = nil
        pendingByKey[conflict.key] = nil
        record(conflict, .resolved(.resolvedManually(version)), at: time)
        return version
    }

    /// Returns the audit trail and empties it (for example after persisting it).
    public mutating func drainAuditTrail() -> [ConflictAuditEntry<Value>] {
        defer { auditTrail.removeAll() }
        return auditTrail
    }

    private mutating func supersedePending(key: String, by survivors: [Version<Value>], at time: HLCTimestamp) {
        guard survivors.count == 1, let winner = survivors.first,
              let id = pendingByKey[key], let conflict = pending[id],
              conflict.versions.allSatisfy({ winner.clock.dominates($0.clock) }) else { return }
        pending[id] = nil
        pendingByKey[key] = nil
        record(conflict, .resolved(.superseded(winner)), at: time)
    }

    private mutating func record(_ conflict: Conflict<Value>, _ event: ConflictAuditEntry<Value>.Event, at time: HLCTimestamp) {
        lastAudit += 1
        auditTrail.append(ConflictAuditEntry(
            sequence: lastAudit, conflict: conflict.id, key: conflict.key, versions: conflict.versions,
            strategy: strategy.name, time: time, event: event))
    }

    /// The versions no other version has seen: drops every version that happened
    /// before another, and exact duplicates. Order of first appearance is kept.
    static func concurrentFrontier(_ versions: [Version<Value>]) -> [Version<Value>] {
        var frontier: [Version<Value>] = []
        for (index, version) in versions.enumerated() {
            let dominated = versions.enumerated().contains { other in
                guard other.offset != index else { return false }
                switch version.clock.compare(to: other.element.clock) {
                case .before: return true
                case .equal: return other.element.value == version.value && other.offset < index
                case .after, .concurrent: return false
                }
            }
            if !dominated { frontier.append(version) }
        }
        return frontier
    }

    static func joinedClock(of versions: [Version<Value>]) -> VectorClock? {
        guard var clock = versions.first?.clock else { return nil }
        for version in versions.dropFirst() { clock.merge(version.clock) }
        return clock
    }
}

extension ConflictOutcome {
    /// The versions to store after this outcome.
    var versions: [Version<Value>] {
        switch self {
        case .winner(let version), .merged(let version), .resolvedManually(let version), .superseded(let version):
            [version]
        case .siblingsKept(let versions):
            versions
        }
    }
}
