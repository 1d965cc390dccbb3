public import Logging
import NIOConcurrencyHelpers

/// How failed `AUTH`s are slowed down.
///
/// Failures are counted per connection and per client address (a guesser that
/// reconnects after every try, as redis-py does after `-WRONGPASS`, is counted once
/// per try all the same); the larger count applies. The first `freeFailures` failures
/// are answered at once; each later one waits `baseDelay`, doubled per failure up to
/// `maxDelay`, before its `-WRONGPASS`; from `maxFailures` on the connection is closed
/// after the reply. An address's count is forgotten `forgetAfter` after its last
/// failure. A password guesser gets a few tries and then waits seconds per try.
public struct RESPAuthThrottle: Sendable, Hashable {
    /// Failures answered without delay. Default 3.
    public var freeFailures: Int
    /// The delay of the first slowed failure. Default 100 ms.
    public var baseDelay: Duration
    /// The longest delay. Default 5 s.
    public var maxDelay: Duration
    /// Failures after which the connection is closed. Default 10.
    public var maxFailures: Int
    /// How long an address's failures are remembered after its last one. Default 60 s.
    public var forgetAfter: Duration
    /// The most addresses remembered (bounded memory). Default 10,000.
    public var maxAddresses: Int

    /// Creates a throttle; see each property for its default.
    public init(freeFailures: Int = 3, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5),
                maxFailures: Int = 10, forgetAfter: Duration = .seconds(60), maxAddresses: Int = 10_000) {
        self.freeFailures = freeFailures
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxFailures = maxFailures
        self.forgetAfter = forgetAfter
        self.maxAddresses = maxAddresses
    }

    /// The wait before answering the `failures`-th failure (1-based).
    func delay(afterFailures failures: Int) -> Duration {
        let slowed = failures - freeFailures
        guard slowed > 0 else { return .zero }
        var delay = baseDelay
        for _ in 1 ..< min(slowed, 32) where delay < maxDelay { delay *= 2 }
        return min(delay, maxDelay)
    }
}

/// Recent failed authentications per client address, shared by the connections of
/// one server. Bounded: at most `maxAddresses` entries; when full, entries older than
/// `forgetAfter` go first, then the oldest.
final class AuthFailuresByAddress: Sendable {
    private struct Entry {
        var failures: Int
        var last: ContinuousClock.Instant
    }

    private let throttle: RESPAuthThrottle
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(throttle: RESPAuthThrottle) {
        self.throttle = throttle
    }

    /// Counts one failure from `address` and returns its recent failures.
    func recordFailure(from address: String, now: ContinuousClock.Instant = .now) -> Int {
        let forget = throttle.forgetAfter
        let capacity = max(1, throttle.maxAddresses)
        return entries.withLockedValue { entries in
            var entry = entries[address] ?? Entry(failures: 0, last: now)
            if now - entry.last > forget { entry.failures = 0 }
            entry.failures += 1
            entry.last = now
            if entries[address] == nil && entries.count >= capacity {
                entries = entries.filter { now - $0.value.last <= forget }
                if entries.count >= capacity, let oldest = entries.min(by: { $0.value.last < $1.value.last })?.key {
                    entries.removeValue(forKey: oldest)
                }
            }
            entries[address] = entry
            return entry.failures
        }
    }

    /// How many addresses are remembered.
    var count: Int { entries.withLockedValue { $0.count } }
}

/// Logs failed authentications (and refused admin requests) at `notice`, at most
/// `burst` lines per `window` for the whole server: a password guesser cannot flood
/// the log. Lines dropped in a window are counted in the first line of the next one
/// (`suppressed`).
final class RateLimitedLog: Sendable {
    private struct State {
        var windowStart: ContinuousClock.Instant
        var linesInWindow = 0
        var suppressed = 0
    }

    private let logger: Logger
    private let burst: Int
    private let window: Duration
    private let state: NIOLockedValueBox<State>

    init(logger: Logger, burst: Int = 5, window: Duration = .seconds(10)) {
        self.logger = logger
        self.burst = burst
        self.window = window
        self.state = NIOLockedValueBox(State(windowStart: .now))
    }

    /// Logs `message` unless this window's lines are used up.
    func notice(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        let now = ContinuousClock.now
        let suppressed: Int? = state.withLockedValue { state in
            if now - state.windowStart >= window {
                state.windowStart = now
                state.linesInWindow = 0
            }
            guard state.linesInWindow < burst else {
                state.suppressed += 1
                return nil
            }
            state.linesInWindow += 1
            defer { state.suppressed = 0 }
            return state.suppressed
        }
        guard let suppressed else { return }
        var metadata = metadata
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        logger.notice(message(), metadata: metadata)
    }
}
