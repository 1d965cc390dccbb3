/// A read that may be served: once the state machine has applied `index`, reading it
/// is linearizable for the request identified by `context`.
public struct ReadState: Sendable, Hashable {
    /// The commit index at the time the read was confirmed.
    public var index: LogIndex
    /// The caller's identifier for the read.
    public var context: UInt64

    /// Creates a read state.
    public init(index: LogIndex, context: UInt64) {
        self.index = index
        self.context = context
    }
}

/// The leader's pending ReadIndex requests (Raft thesis §6.4).
struct ReadOnlyState: Sendable {
    struct Request: Sendable {
        var index: LogIndex
        var context: UInt64
        /// Who asked: this node or a follower.
        var requester: NodeID
        /// The heartbeat round confirming it.
        var round: UInt64
    }

    /// Requests waiting for a quorum of heartbeat acknowledgements, oldest first.
    var pending: [Request] = []
    /// Requests received before this leader committed an entry of its term: the commit
    /// index is not yet known to be current (Raft thesis §6.4 step 1).
    var waitingForCommit: [(context: UInt64, requester: NodeID)] = []
    /// Acknowledgements per round.
    var acks: [UInt64: Set<NodeID>] = [:]
    var nextRound: UInt64 = 1
    /// The round collecting reads since the last `Ready`: its heartbeat goes out once,
    /// when the shell takes the next `Ready`, and confirms every read it collected
    /// (they all arrived before it was sent). `nil` when no read is waiting for one.
    var openRound: UInt64?
    /// The leader lease (`ReadOnlyOption.leaseBased` only).
    var lease = LeaderLease()

    /// Follower reads forwarded to the leader, by context.
    mutating func resolveForwarded(context: UInt64, index: LogIndex, into readStates: inout [ReadState]) {
        // index 0 means the leader could not serve the read; the caller times out
        // and retries (it learns nothing stale).
        if index > 0 { readStates.append(ReadState(index: index, context: context)) }
    }
}

extension RaftCore {
    /// Asks for a linearizable read point. The answer arrives as a `ReadState` with
    /// the same `context` in a later `Ready` (possibly the next one); serve the read
    /// once the applied index reaches `ReadState.index`. On a follower the request goes
    /// to the leader. Throws `RaftError.notLeader` when no leader is known.
    public mutating func readIndex(context: UInt64) throws {
        if let divergenceRecord { throw RaftError.diverged(divergenceRecord) }
        if role == .leader {
            handleReadIndexRequest(context: context, from: id)
            return
        }
        guard let leader else { throw RaftError.notLeader(leader: nil) }
        send(to: leader, .readIndex(term: term, context: context))
    }

    /// `true` once this leader has committed an entry of its own term.
    var hasCommittedInTerm: Bool { (try? log.term(at: log.committed)) == term }

    mutating func handleReadIndexRequest(context: UInt64, from requester: NodeID) {
        // A single voter is its own quorum.
        if tracker.voters.allVoters == [id] {
            answerRead(ReadState(index: log.committed, context: context), requester: requester)
            return
        }
        guard hasCommittedInTerm else {
            readOnly.waitingForCommit.append((context, requester))
            return
        }
        switch config.readOnlyOption {
        case .leaseBased where leaseHolds:
            // No other leader can exist while the lease holds, so the commit index
            // is current (LeaderLease).
            answerRead(ReadState(index: log.committed, context: context), requester: requester)
        case .safe, .leaseBased:
            // Batched: every read that arrives before the next `Ready` joins one round,
            // one heartbeat broadcast (sent by `broadcastOpenReadRound`). In lease
            // mode outside the lease, the round also renews it.
            let round: UInt64
            if let open = readOnly.openRound {
                round = open
            } else {
                round = readOnly.nextRound
                readOnly.nextRound += 1
                readOnly.acks[round] = [id]
                readOnly.openRound = round
            }
            readOnly.pending.append(.init(index: log.committed, context: context, requester: requester, round: round))
        }
    }

    /// Sends the heartbeat of the round collecting reads, if any (from `ready()`).
    mutating func broadcastOpenReadRound() {
        guard let round = readOnly.openRound else { return }
        readOnly.openRound = nil
        if role == .leader {
            markRoundSent(round)
            broadcastHeartbeat(context: round)
        }
    }

    mutating func answerRead(_ state: ReadState, requester: NodeID) {
        if requester == id {
            readStates.append(state)
        } else {
            send(to: requester, .readIndexResponse(term: term, context: state.context, index: state.index))
        }
    }

    /// A heartbeat answer for `round`: once a quorum answered, leadership was current
    /// when the round began, so every read up to that round may be served.
    mutating func acknowledgeReadRound(context round: UInt64, from: NodeID) {
        guard readOnly.acks[round] != nil else { return }
        readOnly.acks[round]?.insert(from)
        guard let acked = readOnly.acks[round], tracker.voters.hasQuorum({ acked.contains($0) }) else { return }
        readOnly.lease.confirm(round: round)
        var released = 0
        for request in readOnly.pending where request.round <= round {
            answerRead(ReadState(index: request.index, context: request.context), requester: request.requester)
            released += 1
        }
        readOnly.pending.removeFirst(released)
        for r in Array(readOnly.acks.keys) where r <= round { readOnly.acks[r] = nil }
    }

    /// Called when the commit index moves: reads that waited for this leader's first
    /// commit can now be processed.
    mutating func releaseReadsWaitingForCommit() {
        guard !readOnly.waitingForCommit.isEmpty, hasCommittedInTerm else { return }
        let waiting = readOnly.waitingForCommit
        readOnly.waitingForCommit = []
        for (context, requester) in waiting { handleReadIndexRequest(context: context, from: requester) }
    }
}
