/// A conflict between this node's committed log and the leader's: the leader sent an
/// entry (or a snapshot boundary) at an index this node had already committed, with a
/// different term.
///
/// Raft promises this cannot happen (Log Matching, §5.3, and Leader Completeness,
/// §5.4): every committed entry is in the log of every later leader. When it does,
/// something outside the algorithm broke that promise — most often acknowledged data
/// was lost (a wiped or restored disk on a quorum of peers), or the node's own log was
/// damaged. Either the leader or this node serves a history that clients never saw as
/// a whole, so this node stops taking part: see `RaftCore.divergence`.
public struct Divergence: Sendable, Hashable, CustomStringConvertible {
    /// The first index at which the logs disagree (at or below `committedIndex`).
    public var index: LogIndex
    /// This node's term for the entry at `index`.
    public var localTerm: Term
    /// The leader's term for the entry at `index`.
    public var leaderTerm: Term
    /// The leader that sent the conflicting entry.
    public var leader: NodeID
    /// The leader's term when it sent it.
    public var term: Term
    /// This node's commit index when the conflict was found.
    public var committedIndex: LogIndex

    /// Creates a divergence record.
    public init(index: LogIndex, localTerm: Term, leaderTerm: Term, leader: NodeID, term: Term, committedIndex: LogIndex) {
        self.index = index
        self.localTerm = localTerm
        self.leaderTerm = leaderTerm
        self.leader = leader
        self.term = term
        self.committedIndex = committedIndex
    }

    public var description: String {
        "log diverged from leader \(leader) (term \(term)): entry \(index) is committed here with term \(localTerm) "
            + "(commit index \(committedIndex)) but the leader has it with term \(leaderTerm); this node no longer "
            + "votes, appends, commits or applies — restore it from a backup, or remove it from the cluster and "
            + "add it back with an empty data directory"
    }
}

extension RaftCore {
    /// Set once this node found its committed log in conflict with a leader's. Sticky:
    /// from then on `step` throws `RaftError.diverged`, proposals and reads are
    /// refused, the node never campaigns, and `ready()` hands out no further committed
    /// entries. The shell should stop serving and report it (the divergence is not
    /// persisted: a restarted node finds it again on the leader's next append).
    public var divergence: Divergence? { divergenceRecord }

    /// The first index at or below the commit index where `request` disagrees with
    /// this log, comparing only that overlap: `prevLogIndex` and the entries up to the
    /// commit index. Indexes this log no longer has (compacted) cannot be compared and
    /// are skipped. For an ordinary append (`prevLogIndex >= committed`) this is at
    /// most one term lookup.
    func findCommittedConflict(_ request: AppendEntriesRequest, from: NodeID) -> Divergence? {
        let committed = log.committed
        guard request.prevLogIndex <= committed else { return nil }
        func conflict(_ index: LogIndex, _ leaderTerm: Term) -> Divergence? {
            guard let local = try? log.term(at: index), local != leaderTerm else { return nil }
            return Divergence(index: index, localTerm: local, leaderTerm: leaderTerm, leader: from, term: term,
                              committedIndex: committed)
        }
        if let found = conflict(request.prevLogIndex, request.prevLogTerm) { return found }
        for entry in request.entries {
            if entry.index > committed { break }
            if let found = conflict(entry.index, entry.term) { return found }
        }
        return nil
    }

    /// Enters the sticky diverged state and returns the error to throw.
    mutating func diverge(_ found: Divergence) -> RaftError {
        divergenceRecord = found
        abortIncomingSnapshot()
        leader = nil
        electionElapsed = 0
        return .diverged(found)
    }
}
