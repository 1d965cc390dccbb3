/// A point on a monotonic clock, measured from an arbitrary origin chosen by the clock.
/// Only differences between instants of the same clock mean anything.
public struct ClusterInstant: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Time since the clock's origin.
    public var sinceOrigin: Duration

    /// Creates an instant `sinceOrigin` after the origin.
    public init(sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }

    /// The origin.
    public static let zero = ClusterInstant(sinceOrigin: .zero)

    public static func < (lhs: ClusterInstant, rhs: ClusterInstant) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }

    /// The instant `duration` later.
    public static func + (lhs: ClusterInstant, rhs: Duration) -> ClusterInstant {
        ClusterInstant(sinceOrigin: lhs.sinceOrigin + rhs)
    }

    /// The time from `rhs` to `lhs`.
    public static func - (lhs: ClusterInstant, rhs: ClusterInstant) -> Duration { lhs.sinceOrigin - rhs.sinceOrigin }

    public var description: String { "t+\(sinceOrigin)" }
}

/// The source of time for failure detection, injected into `Cluster`. Production code
/// uses `ClusterClock.continuous`; tests pass a closure over a manual time.
public struct ClusterClock: Sendable {
    /// Returns the current instant; must never go backwards.
    public let now: @Sendable () -> ClusterInstant

    /// Creates a clock from a function returning the current instant.
    public init(now: @escaping @Sendable () -> ClusterInstant) { self.now = now }

    /// The standard library's `ContinuousClock`, with its origin at the moment this
    /// clock is made.
    public static var continuous: ClusterClock {
        let clock = ContinuousClock()
        let origin = clock.now
        return ClusterClock { ClusterInstant(sinceOrigin: clock.now - origin) }
    }
}
