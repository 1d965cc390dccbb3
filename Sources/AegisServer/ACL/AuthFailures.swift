public import Logging
import NIOConcurrencyHelpers

/// How failed `AUTH`s are slowed down on one connection.
///
/// The first `freeFailures` failures are answered at once; each later one waits
/// `baseDelay`, doubled per failure up to `maxDelay`, before its `-WRONGPASS`; after
/// `maxFailures` the connection is closed. A password guesser gets a few tries per
/// connection and waits seconds per try after that.
public struct RESPAuthThrottle: Sendable, Hashable {
    /// Failures answered without delay. Default 3.
    public var freeFailures: Int
    /// The delay of the first slowed failure. Default 100 ms.
    public var baseDelay: Duration
    /// The longest delay. Default 5 s.
    public var maxDelay: Duration
    /// Failures after which the connection is closed. Default 10.
    public var maxFailures: Int

    /// Creates a throttle; see each property for its default.
    public init(freeFailures: Int = 3, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5),
                maxFailures: Int = 10) {
        self.freeFailures = freeFailures
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxFailures = maxFailures
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
