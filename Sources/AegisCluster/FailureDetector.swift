public import AegisRaft
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Tuning of the phi-accrual failure detector. The defaults suit heartbeats sent at a
/// steady interval over a LAN.
public struct FailureDetectorConfig: Sendable, Hashable {
    /// A node whose phi reaches this value is suspect. Phi 8 means the detector would
    /// be wrong about one time in 10⁸ if arrival times were normally distributed with
    /// the observed mean and deviation (Akka's default threshold).
    public var suspectPhi: Double
    /// How many recent heartbeat intervals the detector learns from.
    public var windowSize: Int
    /// The smallest standard deviation assumed, as a fraction of the heartbeat
    /// interval; keeps perfectly regular heartbeats from making the detector twitchy.
    public var minStandardDeviationRatio: Double
    /// Extra silence tolerated on top of the mean interval (for example GC pauses).
    public var acceptablePause: Duration

    /// Creates a configuration.
    public init(suspectPhi: Double = 8, windowSize: Int = 100, minStandardDeviationRatio: Double = 0.25,
                acceptablePause: Duration = .zero) {
        self.suspectPhi = suspectPhi
        self.windowSize = windowSize
        self.minStandardDeviationRatio = minStandardDeviationRatio
        self.acceptablePause = acceptablePause
    }
}

/// The detector's opinion of one node at one instant.
public enum FailureVerdict: Sendable, Hashable {
    /// Heartbeats are arriving about when expected.
    case alive
    /// The silence is unusually long for this node (phi at or above the threshold).
    case suspect
    /// No heartbeat for the whole failure timeout.
    case down
}

/// A heartbeat failure detector: the phi-accrual detector of Hayashibara et al.
/// (SRDS 2004, as used by Cassandra and Akka) for suspicion, bounded by a fixed
/// failure timeout for declaring a node down.
///
/// For each node it keeps the last `windowSize` intervals between heartbeats. Given
/// the time since the last heartbeat, phi = -log10(P(the next heartbeat is still to
/// come)), with P from a normal distribution of the observed mean (plus the
/// acceptable pause) and standard deviation (at least `minStandardDeviationRatio` of
/// the heartbeat interval); the normal tail uses the logistic approximation Akka
/// uses. Phi adapts: a node with jittery heartbeats is suspected later than a
/// regular one. Before any interval is known, the configured heartbeat interval
/// stands in for the mean, and the instant the node was first watched stands in for
/// its last heartbeat, so a node that never speaks is also detected. Intervals longer
/// than the failure timeout (outages) are not learnt.
///
/// The suspect verdict is adaptive; the down verdict is not: a node is down once
/// `failureTimeout` has passed without a heartbeat, which is what operators configure
/// and what membership decisions should rest on. Time comes from the caller
/// (`ClusterInstant`s), so the detector is deterministic.
public struct FailureDetector: Sendable {
    struct History: Sendable {
        var lastHeartbeat: ClusterInstant
        var heard = false
        /// Recent intervals in seconds, a ring buffer of at most `windowSize`.
        var intervals: [Double] = []
        var next = 0
        var sum = 0.0
        var sumOfSquares = 0.0

        mutating func record(_ interval: Double, windowSize: Int) {
            if intervals.count < windowSize {
                intervals.append(interval)
            } else {
                let old = intervals[next]
                sum -= old
                sumOfSquares -= old * old
                intervals[next] = interval
                next = (next + 1) % windowSize
            }
            sum += interval
            sumOfSquares += interval * interval
        }
    }

    /// The tuning in force.
    public let config: FailureDetectorConfig
    /// The interval at which nodes are expected to send heartbeats.
    public let heartbeatInterval: Duration
    /// The silence after which a node is down.
    public let failureTimeout: Duration
    var histories: [NodeID: History] = [:]

    /// Creates a detector watching no nodes.
    public init(heartbeatInterval: Duration, failureTimeout: Duration, config: FailureDetectorConfig = FailureDetectorConfig()) {
        self.heartbeatInterval = heartbeatInterval
        self.failureTimeout = failureTimeout
        self.config = config
    }

    /// Starts watching `node` as if it had sent a heartbeat at `now` (no-op if watched).
    public mutating func watch(_ node: NodeID, at now: ClusterInstant) {
        if histories[node] == nil { histories[node] = History(lastHeartbeat: now) }
    }

    /// Stops watching `node` and forgets its history.
    public mutating func forget(_ node: NodeID) { histories[node] = nil }

    /// Records a heartbeat from `node` at `now`, watching it if needed. A heartbeat
    /// older than the last one is ignored.
    public mutating func heartbeat(from node: NodeID, at now: ClusterInstant) {
        guard var history = histories[node] else {
            histories[node] = History(lastHeartbeat: now, heard: true)
            return
        }
        guard now >= history.lastHeartbeat else { return }
        // An interval longer than the failure timeout was an outage, not jitter: learning
        // from it would make the detector slow to suspect the node next time.
        let interval = now - history.lastHeartbeat
        if history.heard && interval < failureTimeout {
            history.record(seconds(interval), windowSize: max(config.windowSize, 1))
        }
        history.lastHeartbeat = now
        history.heard = true
        histories[node] = history
    }

    /// The time since `node`'s last heartbeat, or `nil` if it is not watched.
    public func silence(of node: NodeID, at now: ClusterInstant) -> Duration? {
        histories[node].map { now - $0.lastHeartbeat }
    }

    /// The suspicion level of `node` at `now` (0 means no suspicion; higher is worse),
    /// or `nil` if it is not watched.
    public func phi(of node: NodeID, at now: ClusterInstant) -> Double? {
        guard let history = histories[node] else { return nil }
        let interval = seconds(heartbeatInterval)
        let count = Double(history.intervals.count)
        var mean = count > 0 ? history.sum / count : interval
        let variance = count > 0 ? max(history.sumOfSquares / count - mean * mean, 0) : 0
        let deviation = max(variance.squareRoot(), interval * config.minStandardDeviationRatio, 1e-9)
        mean += seconds(config.acceptablePause)
        let elapsed = seconds(now - history.lastHeartbeat)
        let y = (elapsed - mean) / deviation
        let e = exp(-y * (1.5976 + 0.070566 * y * y))
        let probabilityLater = elapsed > mean ? e / (1 + e) : 1 - 1 / (1 + e)
        return max(-log10(max(probabilityLater, Double.leastNormalMagnitude)), 0)
    }

    /// The verdict on `node` at `now`; `.alive` for nodes that are not watched.
    public func verdict(on node: NodeID, at now: ClusterInstant) -> FailureVerdict {
        guard let silence = silence(of: node, at: now), let phi = phi(of: node, at: now) else { return .alive }
        if silence >= failureTimeout { return .down }
        return phi >= config.suspectPhi ? .suspect : .alive
    }
}

/// A duration in seconds.
func seconds(_ duration: Duration) -> Double {
    let (whole, attoseconds) = duration.components
    return Double(whole) + Double(attoseconds) * 1e-18
}
