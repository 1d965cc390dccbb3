/// What a strategy decides about concurrent versions.
public enum StrategyDecision<Value: Sendable & Equatable>: Sendable, Equatable {
    /// One of the versions wins.
    case winner(Version<Value>)
    /// A new value combining the versions replaces them all.
    case merged(Value)
    /// All versions are kept as siblings until a later write resolves them.
    case keepSiblings
    /// The conflict is kept and listed until an operator or program resolves it with
    /// ``ConflictResolver/resolve(_:with:at:)``.
    case deferToManualResolution
}

/// A pluggable way to resolve concurrent versions of one key.
///
/// Strategies must be deterministic: replicas that resolve the same conflict must
/// reach the same decision, or they diverge.
public protocol ConflictResolutionStrategy<Value>: Sendable {
    /// The value type this strategy resolves.
    associatedtype Value: Sendable & Equatable
    /// A short name recorded in the audit trail, for example `"last-write-wins"`.
    var name: String { get }
    /// Decides about `versions`: two or more pairwise concurrent versions.
    func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value>
}

/// The version with the greatest HLC timestamp wins (replica ID breaks ties).
public struct LastWriterWinsStrategy<Value: Sendable & Equatable>: ConflictResolutionStrategy {
    /// Creates the strategy.
    public init() {}

    public var name: String { "last-write-wins" }

    public func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value> {
        guard let newest = versions.max(by: { $0.timestamp < $1.timestamp }) else { return .keepSiblings }
        return .winner(newest)
    }
}

/// Concurrent versions are kept as siblings (as Riak and Dynamo do) until a write
/// that has seen them all replaces them.
public struct VectorClockStrategy<Value: Sendable & Equatable>: ConflictResolutionStrategy {
    /// Creates the strategy.
    public init() {}

    public var name: String { "vector-clock" }

    public func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value> { .keepSiblings }
}

/// The version from the highest-priority origin wins: a replica's own priority if it
/// has one, otherwise its region's, otherwise 0. Equal priorities fall back to
/// last-write-wins.
public struct PriorityStrategy<Value: Sendable & Equatable>: ConflictResolutionStrategy {
    /// Priorities of regions; higher wins.
    public let regionPriorities: [String: Int]
    /// Priorities of individual replicas; they override their region's.
    public let replicaPriorities: [ReplicaID: Int]

    /// Creates the strategy.
    public init(regionPriorities: [String: Int] = [:], replicaPriorities: [ReplicaID: Int] = [:]) {
        self.regionPriorities = regionPriorities
        self.replicaPriorities = replicaPriorities
    }

    public var name: String { "priority" }

    /// The priority of `origin` under this strategy.
    public func priority(of origin: Origin) -> Int {
        replicaPriorities[origin.replica] ?? regionPriorities[origin.region] ?? 0
    }

    public func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value> {
        let best = versions.max { lhs, rhs in
            let (left, right) = (priority(of: lhs.origin), priority(of: rhs.origin))
            return left != right ? left < right : lhs.timestamp < rhs.timestamp
        }
        guard let best else { return .keepSiblings }
        return .winner(best)
    }
}

/// The application merges the values (for example a union of shopping carts). The
/// function must be deterministic and must not depend on the order of `versions`.
public struct CustomMergeStrategy<Value: Sendable & Equatable>: ConflictResolutionStrategy {
    /// The name recorded in the audit trail.
    public let name: String
    private let merge: @Sendable ([Version<Value>]) -> Value

    /// Creates the strategy from a merge function.
    public init(name: String = "custom-merge", merge: @escaping @Sendable ([Version<Value>]) -> Value) {
        self.name = name
        self.merge = merge
    }

    public func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value> { .merged(merge(versions)) }
}

/// Conflicts are kept, listed and resolved by an explicit call.
public struct ManualStrategy<Value: Sendable & Equatable>: ConflictResolutionStrategy {
    /// Creates the strategy.
    public init() {}

    public var name: String { "manual" }

    public func resolve(_ versions: [Version<Value>]) -> StrategyDecision<Value> { .deferToManualResolution }
}
