/// Jittered exponential backoff between reconnection attempts.
///
/// After `n` consecutive failures the nominal delay is `initial * multiplier^(n-1)`,
/// capped at `maximum`; the actual delay is drawn uniformly from the upper half of
/// the nominal one ("equal jitter"), so peers that failed together do not retry in
/// lockstep.
public struct Backoff: Sendable, Hashable {
    /// The nominal delay after the first failure.
    public var initial: Duration
    /// The largest nominal delay.
    public var maximum: Duration
    /// The growth factor per failure (at least 1).
    public var multiplier: Double

    /// Creates a backoff policy; the default goes from 50 ms to 2 s.
    public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2), multiplier: Double = 2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The nominal (unjittered) delay after `failures` consecutive failures.
    public func nominalDelay(afterFailures failures: Int) -> Duration {
        let initialNanos = Double(initial.nanoseconds)
        let maximumNanos = Double(maximum.nanoseconds)
        let exponent = Double(max(0, failures - 1))
        let nominal = min(maximumNanos, initialNanos * Self.power(max(1, multiplier), exponent))
        return .nanoseconds(Int64(max(0, nominal)))
    }

    /// The delay to wait after `failures` consecutive failures, jittered with `generator`.
    public func delay(afterFailures failures: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let nominal = nominalDelay(afterFailures: failures).nanoseconds
        guard nominal > 1 else { return .nanoseconds(nominal) }
        let half = nominal / 2
        return .nanoseconds(half + Int64.random(in: 0...(nominal - half), using: &generator))
    }

    /// `base^exponent` for small non-negative integral exponents, saturating early.
    private static func power(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = exponent
        while remaining >= 1 && result < 1e18 {
            result *= base
            remaining -= 1
        }
        return result
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
