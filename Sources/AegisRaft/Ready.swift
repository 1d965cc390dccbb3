/// Everything the core asks the shell to do, collected since the last `advance`.
///
/// ## The order the shell MUST follow
/// 1. **Persist** `hardState`, `entries` and `snapshot` (install the snapshot into
///    the state machine too), and fsync if `mustSync`.
/// 2. **Send** `messages`.
/// 3. **Apply** `committedEntries` to the state machine, in order, and serve
///    `readStates` whose index has been applied.
/// 4. **Advance**: call `advance(_:)` with this `Ready`. Do not call `step`, `tick`
///    or `propose` between `ready()` and `advance(_:)`.
///
/// ## The two allowed reorderings
/// A leader may send its `appendEntries` messages (`RaftMessage.isLeaderAppend`)
/// *before or in parallel with* persisting `entries`. This is safe because the core
/// counts the leader's own copy towards a quorum only after `advance(_:)` reports it
/// durable: an entry can never be committed on the strength of a leader copy that a
/// crash could still lose. Every other message (votes, responses) must wait for
/// step 1, or a crash could make the node forget a vote or an acknowledged entry.
///
/// Any node may apply the first ``durableCommittedCount`` committed entries — those
/// this node had already made durable before this `Ready` — and, when that is all of
/// them, serve `readStates`, *before or in parallel with* step 1. They are committed
/// (durable on a quorum) and durable here, so nothing this `Ready` writes can change
/// them, and a client answered from them is answered with what a crash cannot undo.
/// (etcd's raft hands out only such entries when its storage writes are
/// asynchronous.) A committed entry that is still in `entries` is applied after
/// step 1.
public struct Ready: Sendable {
    /// The new volatile state, if it changed.
    public var softState: SoftState?
    /// The new persistent state, if it changed.
    public var hardState: RaftState?
    /// Entries to append to stable storage (replacing any conflicting suffix).
    public var entries: [LogEntry]
    /// A snapshot from the leader to persist and install.
    public var snapshot: Snapshot?
    /// Entries committed and not yet applied, in order.
    public var committedEntries: [LogEntry]
    /// Messages to send.
    public var messages: [RaftMessage]
    /// Reads that can be served once their index is applied.
    public var readStates: [ReadState]
    /// `true` if the writes of step 1 must be fsynced before step 2 (a new term or
    /// vote, or new entries). A commit-index change alone need not be synced.
    public var mustSync: Bool
    /// `true` when the applied log has grown past `RaftConfig.snapshotThreshold`
    /// since the last snapshot: after `advance(_:)`, the application should snapshot
    /// its state at `RaftCore.appliedIndex` with `RaftCore.confState`, record it with
    /// `RaftLogStorage.createSnapshot` and compact the log.
    public var shouldSnapshot: Bool

    /// How many of the leading `committedEntries` were durable on this node before this
    /// `Ready`: those below the first of `entries` (every entry the core handed out
    /// earlier was persisted with an fsync before `advance(_:)`), or all of them when
    /// `entries` is empty. Committed entries are consecutive indexes, so this is their
    /// distance to the first new entry.
    public var durableCommittedCount: Int {
        guard let firstUnstable = entries.first?.index, let firstCommitted = committedEntries.first?.index else {
            return committedEntries.count
        }
        guard firstUnstable > firstCommitted else { return 0 }
        return Int(min(firstUnstable - firstCommitted, LogIndex(committedEntries.count)))
    }

    /// `true` if there is nothing to do.
    public var isEmpty: Bool {
        softState == nil && hardState == nil && entries.isEmpty && snapshot == nil && committedEntries.isEmpty
            && messages.isEmpty && readStates.isEmpty && !shouldSnapshot
    }
}

extension RaftCore {
    /// `true` if `ready()` would return a non-empty `Ready`.
    public var hasReady: Bool {
        if pendingBroadcast || !messages.isEmpty || !readStates.isEmpty || readOnly.openRound != nil { return true }
        if softState != previousSoftState || hardState != previousHardState { return true }
        if !log.unstable.entries.isEmpty || log.unstable.snapshot != nil { return true }
        if log.unstable.snapshot == nil && log.hasNextCommittedEntries && divergenceRecord == nil { return true }
        return wantsSnapshot
    }

    /// The work for the shell. Hand it back with `advance(_:)` when done.
    public mutating func ready() throws -> Ready {
        if pendingBroadcast && role == .leader { broadcastAppend() }
        broadcastOpenReadRound()
        pendingBroadcast = false
        let hs = hardState
        let ss = softState
        let entries = log.unstable.entries
        let snapshot = log.unstable.snapshot
        // A diverged node applies nothing more (see `divergence`).
        let mayApply = snapshot == nil && divergenceRecord == nil
        let committed = mayApply ? try log.nextCommittedEntries(maxBytes: config.maxCommittedBytesPerReady) : []
        let request = wantsSnapshot
        if request { snapshotRequested = true }
        let rd = Ready(
            softState: ss == previousSoftState ? nil : ss,
            hardState: hs == previousHardState ? nil : hs,
            entries: entries,
            snapshot: snapshot,
            committedEntries: committed,
            messages: messages,
            readStates: readStates,
            mustSync: !entries.isEmpty || hs.term != previousHardState.term || hs.votedFor != previousHardState.votedFor
                || snapshot != nil,
            shouldSnapshot: request)
        messages = []
        readStates = []
        return rd
    }

    /// Confirms that the shell persisted, sent and applied what `ready` asked for.
    public mutating func advance(_ ready: Ready) {
        if let hs = ready.hardState { previousHardState = hs }
        if let ss = ready.softState { previousSoftState = ss }
        if let snap = ready.snapshot {
            log.stableSnapshotTo(snap.metadata.index)
            log.applied = max(log.applied, snap.metadata.index)
            lastSnapshotIndex = max(lastSnapshotIndex, snap.metadata.index)
        }
        if let last = ready.entries.last {
            log.stableTo(index: last.index, term: last.term)
            // The leader's own copy now counts towards the quorum (see `Ready`).
            if role == .leader, last.term == term {
                tracker.update(id) { _ = $0.maybeUpdate(last.index) }
                if maybeCommit() { pendingBroadcast = true }
            }
        }
        if let last = ready.committedEntries.last {
            log.appliedTo(last.index)
            reduceUncommittedBytes(ready.committedEntries)
            afterApply(ready.committedEntries)
        }
        if ready.shouldSnapshot {
            // The application snapshots at the applied index right after this call.
            snapshotRequested = false
            lastSnapshotIndex = log.applied
        }
    }

    /// `true` if the applied log passed the snapshot threshold.
    var wantsSnapshot: Bool {
        config.snapshotThreshold > 0 && !snapshotRequested && log.applied >= lastSnapshotIndex + config.snapshotThreshold
    }

    /// Where to compact the log after a snapshot at `snapshotIndex`: keep
    /// `snapshotTrailingEntries` behind it, and nothing a snapshot transfer in
    /// progress still needs (see `compactionLimit`). 0: do not compact.
    public func compactionIndex(afterSnapshotAt snapshotIndex: LogIndex) -> LogIndex {
        let keep = config.snapshotTrailingEntries
        var index = snapshotIndex > keep ? snapshotIndex - keep : 0
        if let limit = compactionLimit { index = min(index, limit) }
        return index
    }

    /// The index of the last entry applied (as confirmed by `advance`).
    public var appliedIndex: LogIndex { log.applied }
}
