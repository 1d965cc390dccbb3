/// How the leader is currently replicating to one follower.
public enum ProgressState: String, Sendable, Hashable {
    /// The leader does not know where the follower's log matches: it sends one append
    /// per heartbeat interval and waits for the answer.
    case probe
    /// The follower's log matches up to `match`: appends are pipelined, bounded by the
    /// in-flight window.
    case replicate
    /// The follower needs a snapshot; appends are paused until it is installed.
    case snapshot
}

/// The leader's view of one follower (or of itself).
public struct Progress: Sendable, Hashable {
    /// The highest index known to be replicated on the node.
    /// Invariant: `match < next`.
    public internal(set) var match: LogIndex = 0
    /// The next index to send.
    public internal(set) var next: LogIndex = 1
    /// The replication state.
    public internal(set) var state: ProgressState = .probe
    /// In `.snapshot`: the index of the snapshot being sent.
    public internal(set) var pendingSnapshot: LogIndex = 0
    /// `true` if the node was heard from since the last check-quorum round.
    public internal(set) var recentActive = false
    /// In `.probe`: an append was sent and not yet answered (or a heartbeat interval
    /// has not passed), so no further append is sent.
    var probeSent = false
    /// In `.probe`: the leader's `periodicHeartbeats` when the probe was last sent, the
    /// bytes of entries it carried, and the bytes of every probe sent since that
    /// periodic heartbeat went out. A heartbeat answer re-sends the probe at once only
    /// while the copies sent in this heartbeat interval stay within
    /// `probeBytesPerHeartbeat`; past it, the next periodic heartbeat's answer does.
    /// Read rounds are heartbeats too (one per batch of reads), and a follower busy
    /// replaying its log after a restart answers hundreds of them at once: each answer
    /// used to re-send the whole catch-up while the follower was still writing the
    /// first copy (a rolling restart measured 2.27 MB sent to the rejoining follower in
    /// one second against ~0.22 MB/s in steady state, and the leader's event loop spent
    /// ~20 ms of CPU in 100 ms encoding the copies).
    var probeSentAtHeartbeat: UInt64 = 0
    var probeBytes = 0
    var probeBytesThisHeartbeat = 0
    /// The bytes of probe copies one periodic heartbeat interval may carry (64 KiB): a
    /// small lost probe is still re-sent at the next answer of any heartbeat, several
    /// times an interval, which a lossy link needs (the simulator drops up to 30 % of
    /// messages; waiting a heartbeat interval per lost probe slowed recovery past the
    /// liveness bound: aegis-sim seeds 587 and 1622 with every probe over 1 KiB
    /// throttled); a probe over it goes once per interval.
    static let probeBytesPerHeartbeat = 64 << 10
    /// `true` for a learner.
    public internal(set) var isLearner = false
    /// The messages in flight in `.replicate`.
    var inflights: Inflights

    // Snapshot transfer (in `.snapshot`).
    /// The next byte offset of the snapshot to send.
    var snapshotOffset: UInt64 = 0
    /// Ticks since the last snapshot chunk was sent without an answer.
    var snapshotTicks = 0
    /// `true` while a chunk is in flight.
    var snapshotChunkInFlight = false
    /// The snapshot being sent, pinned for the whole transfer: a newer snapshot taken
    /// meanwhile does not restart it (which could otherwise never finish).
    var snapshotInTransfer: Snapshot?
    /// Chunks re-sent in a row without an answer.
    var snapshotResends = 0

    init(next: LogIndex, maxInflight: Int, maxInflightBytes: Int, isLearner: Bool) {
        self.next = next
        self.isLearner = isLearner
        inflights = Inflights(capacity: maxInflight, maxBytes: maxInflightBytes)
    }

    public static func == (lhs: Progress, rhs: Progress) -> Bool {
        lhs.match == rhs.match && lhs.next == rhs.next && lhs.state == rhs.state && lhs.isLearner == rhs.isLearner
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(match)
        hasher.combine(next)
    }

    private mutating func resetState(_ newState: ProgressState) {
        probeSent = false
        pendingSnapshot = 0
        state = newState
        inflights.reset()
        snapshotOffset = 0
        snapshotTicks = 0
        snapshotChunkInFlight = false
        snapshotInTransfer = nil
        snapshotResends = 0
    }

    /// Enters `.probe`, restarting from the match (or past a just-installed snapshot).
    mutating func becomeProbe() {
        if state == .snapshot {
            let pending = pendingSnapshot
            resetState(.probe)
            next = max(match.saturatingSuccessor, pending.saturatingSuccessor)
        } else {
            resetState(.probe)
            next = match.saturatingSuccessor
        }
    }

    /// Enters `.replicate`.
    mutating func becomeReplicate() {
        resetState(.replicate)
        next = match.saturatingSuccessor
    }

    /// Enters `.snapshot` for a snapshot at `index`.
    mutating func becomeSnapshot(_ index: LogIndex) {
        resetState(.snapshot)
        pendingSnapshot = index
    }

    /// Records that an append carrying entries up to `lastIndex` (`count` entries,
    /// `bytes` bytes) was sent.
    mutating func sentEntries(lastIndex: LogIndex, count: Int, bytes: Int, heartbeat: UInt64) {
        switch state {
        case .replicate:
            if count > 0 {
                next = lastIndex.saturatingSuccessor
                inflights.add(lastIndex, bytes: bytes)
            }
        case .probe:
            probeSent = true
            if heartbeat != probeSentAtHeartbeat { probeBytesThisHeartbeat = 0 }
            probeBytesThisHeartbeat &+= bytes
            probeSentAtHeartbeat = heartbeat
            probeBytes = bytes
        case .snapshot:
            break
        }
    }

    /// Raises `match` to `index` if it is higher. Returns `false` for a stale answer.
    /// `index` may come from a message: the arithmetic saturates rather than trap
    /// (`RaftCore.step` also refuses an index beyond the leader's log).
    mutating func maybeUpdate(_ index: LogIndex) -> Bool {
        var updated = false
        if match < index {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index.saturatingSuccessor)
        return updated
    }

    /// The follower lost entries up to `match` (its log now ends at `index`): lowers
    /// `match` to `index` and probes from there. The leader's commit index does not
    /// move back; only the follower's share of future quorums does.
    mutating func lowerMatch(to index: LogIndex) {
        guard index < match else { return }
        match = index
        resetState(.probe)
        next = match.saturatingSuccessor
    }

    /// Handles a rejection of the append whose previous index was `rejected`;
    /// `hint` is the highest index at which the logs may still match.
    /// Returns `false` if the rejection is stale.
    mutating func maybeDecrease(rejected: LogIndex, hint: LogIndex) -> Bool {
        if state == .replicate {
            // A rejection at or below match is stale (it answers an older message).
            if rejected <= match { return false }
            next = match.saturatingSuccessor
            return true
        }
        // In probe, only the answer to the latest probe counts. `rejected` and `hint`
        // come from a message: saturating arithmetic, never a trap.
        if next == 0 || next - 1 != rejected { return false }
        next = max(min(rejected, hint.saturatingSuccessor), match.saturatingSuccessor)
        probeSent = false
        return true
    }

    /// A heartbeat answer arrived (`heartbeat`: the leader's `periodicHeartbeats`): the
    /// follower is reachable, so a throttled flow may send one more append. A probe
    /// whose answer may have been lost is sent again (within `probeBytesPerHeartbeat`
    /// per periodic heartbeat interval, see `probeSentAtHeartbeat`); in a full window one slot is
    /// freed (the appends in flight may all have been lost; a gap the follower cannot
    /// fill is rejected and sends the progress back to probing).
    mutating func heartbeatAnswered(heartbeat: UInt64) {
        switch state {
        case .probe:
            if heartbeat > probeSentAtHeartbeat
                || probeBytesThisHeartbeat &+ probeBytes <= Self.probeBytesPerHeartbeat { probeSent = false }
        case .replicate:
            if inflights.isFull { inflights.freeFirst() }
        case .snapshot:
            break
        }
    }

    /// `true` when no append should be sent now.
    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }
}
