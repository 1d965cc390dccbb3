/// Where a version was written: the replica and the region (cluster) it belongs to.
public struct Origin: Hashable, Sendable, CustomStringConvertible {
    /// The replica that wrote the version.
    public let replica: ReplicaID
    /// The region (or cluster) of that replica, for example `"eu-west"`.
    public let region: String

    /// Creates an origin.
    public init(replica: ReplicaID, region: String) {
        self.replica = replica
        self.region = region
    }

    public var description: String { "\(region)/\(replica.rawValue)" }
}

/// One version of a key's value as replicated between clusters: the value, the vector
/// clock of the write, where it was written and when.
public struct Version<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The value.
    public let value: Value
    /// The causal history of the write.
    public let clock: VectorClock
    /// Where it was written.
    public let origin: Origin
    /// When it was written (hybrid logical clock of the origin).
    public let timestamp: HLCTimestamp

    /// Creates a version.
    public init(value: Value, clock: VectorClock, origin: Origin, timestamp: HLCTimestamp) {
        self.value = value
        self.clock = clock
        self.origin = origin
        self.timestamp = timestamp
    }

    /// The same value and origin with a different clock.
    func withClock(_ clock: VectorClock) -> Version {
        Version(value: value, clock: clock, origin: origin, timestamp: timestamp)
    }
}

extension Version: Hashable where Value: Hashable {}

/// Identifies one detected conflict in a ``ConflictResolver``.
public struct ConflictID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The sequence number of the conflict, from 1.
    public let rawValue: UInt64

    /// Creates an identifier.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: ConflictID, rhs: ConflictID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "conflict-\(rawValue)" }
}

/// A detected conflict: concurrent versions of one key.
public struct Conflict<Value: Sendable & Equatable>: Sendable, Equatable {
    /// The conflict's identity.
    public let id: ConflictID
    /// The key in conflict.
    public let key: String
    /// The concurrent versions (two or more), in the order they were reconciled.
    public let versions: [Version<Value>]
    /// When the conflict was detected (the resolving replica's clock).
    public let detectedAt: HLCTimestamp
}
