public import AegisKV
import Foundation

/// The source's reference time for the write lease: the process incarnation and a
/// monotonic reading (ns) taken when a frame was made. The target echoes the token of
/// the last frame it received in its next request.
public struct LeaseToken: Sendable, Hashable {
    /// Random per process: a token from another process (before a restart) is ignored.
    public var incarnation: UInt64
    /// The source's monotonic clock when it made the frame, in ns.
    public var nanoseconds: UInt64

    /// Creates a token (the zero token grants nothing).
    public init(incarnation: UInt64 = 0, nanoseconds: UInt64 = 0) {
        self.incarnation = incarnation
        self.nanoseconds = nanoseconds
    }

    /// `incarnation.nanoseconds` in decimal, for a URL query.
    public var text: String { "\(incarnation).\(nanoseconds)" }

    /// Parses `text`; `nil` when malformed.
    public init?(text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = UInt64(parts[0]), let n = UInt64(parts[1]) else { return nil }
        self.init(incarnation: i, nanoseconds: n)
    }
}

/// The primary's write lease (on the node that serves the standby's requests).
///
/// The standby promises not to be promoted until `lease` has passed since the last
/// request it sent (``StandbyPromise``). Each request echoes the token of the last
/// frame the standby received, made at source time `t` — before the standby received
/// it, so before it sent the request. The primary grants itself writes until `t +
/// lease`, which therefore ends no later than the standby's promise: once the standby
/// may be promoted, the old primary has stopped taking writes on its own, whatever the
/// network does. Both sides measure with monotonic clocks (no clock sync needed).
public final class WriteLease: @unchecked Sendable {
    private let lock = NSLock()
    private var expiresAt: UInt64 = 0
    /// This process's incarnation.
    public let incarnation: UInt64
    private let now: @Sendable () -> UInt64

    /// Creates a lease with nothing granted; `now` is a monotonic clock in ns.
    public init(now: @escaping @Sendable () -> UInt64 = WriteLease.monotonicNanoseconds) {
        self.now = now
        self.incarnation = UInt64.random(in: 1 ... UInt64.max)
    }

    /// A token for a frame made now.
    public func token() -> LeaseToken { LeaseToken(incarnation: incarnation, nanoseconds: now()) }

    /// Renews the lease from a token the standby echoed; a token of another process
    /// or from the future grants nothing.
    public func renew(echoing token: LeaseToken, leaseMillis: UInt64) {
        let current = now()
        guard token.incarnation == incarnation, token.nanoseconds <= current else { return }
        let (until, overflow) = token.nanoseconds.addingReportingOverflow(leaseMillis.multipliedReportingOverflow(by: 1_000_000).partialValue)
        guard !overflow else { return }
        lock.withLock { expiresAt = max(expiresAt, until) }
    }

    /// Whether writes are allowed now.
    public var isValid: Bool {
        let current = now()
        return lock.withLock { current < expiresAt }
    }

    /// The ms left (0 when expired).
    public var remainingMillis: UInt64 {
        let current = now()
        return lock.withLock { expiresAt > current ? (expiresAt - current) / 1_000_000 : 0 }
    }

    /// Drops the lease (leadership lost, or the role changed).
    public func revoke() { lock.withLock { expiresAt = 0 } }

    /// The system's monotonic clock in ns.
    @Sendable public static func monotonicNanoseconds() -> UInt64 {
        // The origin is read first: it is set on first use, which must not follow `now`.
        let origin = ContinuousClock.Instant.zeroReference
        return nanoseconds(ContinuousClock.now - origin)
    }

    /// A non-negative duration in ns (0 for a negative one), saturating.
    public static func nanoseconds(_ duration: Duration) -> UInt64 {
        let c = duration.components
        guard c.seconds >= 0, c.attoseconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(c.seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max : whole.addingReportingOverflow(UInt64(c.attoseconds / 1_000_000_000)).partialValue
    }
}

extension ContinuousClock.Instant {
    /// A fixed instant of this process's clock, the origin of `monotonicNanoseconds()`.
    static let zeroReference = ContinuousClock.now
}

/// The standby's side of the lease: when it may be promoted without `--force`.
public final class StandbyPromise: @unchecked Sendable {
    private let lock = NSLock()
    private var lastRequest: UInt64
    private let now: @Sendable () -> UInt64

    /// Creates a promise as if a request was sent now (a new leader or a restart does
    /// not know what an earlier one sent, so it waits a whole lease).
    public init(now: @escaping @Sendable () -> UInt64 = WriteLease.monotonicNanoseconds) {
        self.now = now
        self.lastRequest = now()
    }

    /// Records that a request to the primary is about to be sent.
    public func willSend() {
        let current = now()
        lock.withLock { lastRequest = max(lastRequest, current) }
    }

    /// The ms until a promotion keeps the promise for `leaseMillis` (0: now).
    public func millisUntilFree(leaseMillis: UInt64) -> UInt64 {
        let current = now()
        let last = lock.withLock { lastRequest }
        let until = last &+ leaseMillis &* 1_000_000
        return until > current ? (until - current + 999_999) / 1_000_000 : 0
    }
}

/// The rule a cluster's leader applies before it logs a client command: a standby or
/// fenced cluster takes no writes, nor a primary whose write lease expired.
public enum WriteGate {
    /// The prefix of every refusal: the RESP server answers it as `-READONLY …`.
    public static let readOnlyPrefix = "READONLY "

    /// Why the command encoded in `data` must be refused now (starting with
    /// `readOnlyPrefix`), or `nil`. Reads and replication commands always pass.
    ///
    /// - Parameter pendingStandby: the primary's admin addresses of a cluster started
    ///   as its standby (`--standby-of`) that has not become one yet (it could not
    ///   reach the primary): it takes no writes meanwhile, which its primary would
    ///   never see.
    public static func refusal(for data: [UInt8], state dr: DRState, lease: WriteLease,
                               pendingStandby: String? = nil) -> String? {
        let why: String
        if let pendingStandby, dr.isInitial {
            why = "You can't write against a read only replica. primary: unknown (this cluster starts as a standby of "
                + "\(pendingStandby) and has not reached it yet)"
        } else if dr.role != .primary {
            why = "You can't write against a read only replica. primary: \(dr.primary.isEmpty ? "unknown" : dr.primary) "
                + "(this cluster is \(dr.role) at epoch \(dr.epoch))"
        } else if dr.leaseMillis > 0 && !lease.isValid {
            why = "You can't write against a read only replica. primary: unknown (write lease expired: this primary, "
                + "epoch \(dr.epoch), has not heard from its standby within \(dr.leaseMillis) ms and may have been replaced)"
        } else {
            return nil
        }
        guard let command = try? Command(decoding: data), command.isWrite, !command.isReplicationControl else { return nil }
        return readOnlyPrefix + why
    }
}
