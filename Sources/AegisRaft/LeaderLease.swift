/// The leader lease behind `ReadOnlyOption.leaseBased` (Raft thesis §6.4.1).
///
/// The leader numbers every heartbeat broadcast (a *round*) and records the tick of
/// its own clock at which the round was sent. When a quorum of voters acknowledges a
/// round, the lease runs from that send tick for `RaftConfig.leaseDurationTicks`.
/// Measuring from the send, not from the answers, is what makes it sound: each
/// acknowledging voter reset its election timer on receipt, which came after the
/// send. The voters' side of the promise is in `RaftCore.step` (a voter ignores
/// campaigns until `electionTimeout` ticks after it last heard from a leader, counted
/// from its start, so a restart does not shorten it).
///
/// The lease is given up for the rest of the term when the leader sends
/// `TimeoutNow` (the transfer target campaigns with voters ignoring their promise,
/// possibly much later if the message is delayed), and rounds sent before a
/// membership change no longer count (the new configuration's quorums).
struct LeaderLease: Sendable {
    /// Leader ticks in this term. Invariant: counts every `tick()` while leading.
    var ticks: UInt64 = 0
    /// Send tick of each round not yet acknowledged by a quorum.
    var sentAt: [UInt64: UInt64] = [:]
    /// Send tick of the newest round a quorum acknowledged.
    var start: UInt64?
    /// Rounds below this number do not extend the lease (sent under an older
    /// membership).
    var firstCountedRound: UInt64 = 0
    /// Set once `TimeoutNow` was sent in this term: no lease until the next term.
    var revoked = false

    /// `true` while a read may be answered from the lease.
    func holds(duration: Int) -> Bool {
        guard !revoked, let start, duration > 0 else { return false }
        return ticks - start < UInt64(duration)
    }

    /// A quorum acknowledged `round`: the lease runs from its send tick.
    mutating func confirm(round: UInt64) {
        if round >= firstCountedRound, let sent = sentAt[round] { start = max(start ?? 0, sent) }
        for r in Array(sentAt.keys) where r <= round { sentAt[r] = nil }
    }

    /// Forgets rounds too old to extend the lease (their acknowledgements could only
    /// give a lease that has already ended), so a leader cut off from its quorum
    /// holds a bounded number of them. Returns the rounds dropped.
    mutating func dropExpiredRounds(duration: Int) -> [UInt64] {
        let expired = sentAt.filter { ticks - $0.value >= UInt64(max(duration, 0)) }.map(\.key)
        for r in expired { sentAt[r] = nil }
        return expired
    }
}

extension RaftCore {
    /// `true` if this leader may answer a read now without a round: lease reads are
    /// configured and its lease holds. (The commit in its term that a read needs
    /// first is checked for every read, in `handleReadIndexRequest`.)
    var leaseHolds: Bool {
        role == .leader && config.readOnlyOption == .leaseBased
            && readOnly.lease.holds(duration: config.leaseDurationTicks)
    }

    /// Counts a leader tick for the lease and drops rounds that can no longer extend
    /// it (lease mode only; the safe mode keeps its read rounds until answered).
    mutating func tickLease() {
        guard config.readOnlyOption == .leaseBased else { return }
        readOnly.lease.ticks += 1
        for round in readOnly.lease.dropExpiredRounds(duration: config.leaseDurationTicks) {
            // Reads waiting on an expired round are released by any later round.
            readOnly.acks[round] = nil
        }
    }

    /// Opens a numbered round for a heartbeat broadcast in lease mode (every
    /// heartbeat renews the lease); 0 (no round) in safe mode. If reads are
    /// collecting in an open round, the heartbeat is that round: a round's number is
    /// then always allocated after every earlier round went out, so a quorum for
    /// round R confirms every read of rounds up to R (each arrived before R was sent).
    mutating func openLeaseRound() -> UInt64 {
        guard config.readOnlyOption == .leaseBased else { return 0 }
        if let open = readOnly.openRound {
            readOnly.openRound = nil
            return open
        }
        let round = readOnly.nextRound
        readOnly.nextRound += 1
        readOnly.acks[round] = [id]
        return round
    }

    /// Records that `round`'s heartbeat goes out now.
    mutating func markRoundSent(_ round: UInt64) {
        guard config.readOnlyOption == .leaseBased, round != 0 else { return }
        readOnly.lease.sentAt[round] = readOnly.lease.ticks
    }

    /// Sends `TimeoutNow` to the transfer target, giving up the lease for this term.
    mutating func sendTimeoutNow(to target: NodeID) {
        readOnly.lease.revoked = true
        send(to: target, .timeoutNow(term: term))
    }

    /// The membership changed: rounds sent before no longer extend the lease, and
    /// the lease held under the old membership ends.
    mutating func restartLeaseAfterMembershipChange() {
        readOnly.lease.start = nil
        readOnly.lease.firstCountedRound = readOnly.nextRound
    }
}
