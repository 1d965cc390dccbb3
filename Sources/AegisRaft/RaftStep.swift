extension RaftCore {
    /// Processes a message from another node. Messages from older terms are answered
    /// or ignored as Raft requires; messages from newer terms update this node's term
    /// first (Raft §5.1).
    ///
    /// A message that is invalid on its own (`RaftMessage.validate()`) or for this
    /// node's state is refused with `RaftError.invalidMessage` before it changes
    /// anything. Once the node has diverged (`divergence`), every message is refused
    /// with `RaftError.diverged`.
    public mutating func step(_ message: RaftMessage) throws {
        if let divergenceRecord { throw RaftError.diverged(divergenceRecord) }
        guard message.to == id else {
            throw RaftError.invalidMessage("message for \(message.to) delivered to \(id)")
        }
        guard message.from != id else { throw RaftError.invalidMessage("message from this node to itself") }
        try message.validate()
        try validateAgainstState(message)
        let messageTerm = message.term
        if messageTerm > term {
            if case .vote(let request) = message.payload {
                // Leader lease (Raft thesis §4.2.3): a node that heard from a leader
                // within the election timeout ignores campaigns, unless the campaign
                // comes from a leadership transfer. With lease reads the promise is
                // kept from the last leader contact whatever happened since (a term
                // change, a restart): the leader serves reads on it (LeaderLease).
                let inLease: Bool
                if config.readOnlyOption == .leaseBased && role != .leader {
                    inLease = leaderContactElapsed < config.electionTimeout
                } else {
                    inLease = config.checkQuorum && leader != nil && electionElapsed < config.electionTimeout
                }
                if inLease && !request.leadershipTransfer { return }
            }
            switch message.payload {
            case .vote(let request) where request.preVote:
                break  // a pre-vote never changes our term
            case .voteResponse(let response) where response.preVote && response.voteGranted:
                break  // granted pre-votes carry the future term; we bump it when we win
            case .appendEntries, .heartbeat, .installSnapshot:
                becomeFollower(term: messageTerm, leader: message.from)
            default:
                becomeFollower(term: messageTerm, leader: nil)
            }
        } else if messageTerm < term {
            switch message.payload {
            case .appendEntries, .heartbeat:
                // A stale leader (for example one that was partitioned): tell it our
                // term so it steps down. Needed with check-quorum/pre-vote, where this
                // node would otherwise never campaign and raise the leader's term.
                if config.checkQuorum || config.preVote {
                    send(to: message.from, .appendEntriesResponse(AppendEntriesResponse(term: term, success: false, followerID: id)))
                }
            case .vote(let request) where request.preVote:
                send(to: message.from, .voteResponse(VoteResponse(term: term, voteGranted: false, voterID: id, preVote: true)))
            default:
                break
            }
            return
        }

        if case .vote(let request) = message.payload {
            try handleVoteRequest(request, from: message.from)
            return
        }
        switch role {
        case .leader: try stepLeader(message)
        case .candidate, .preCandidate: try stepCandidate(message)
        case .follower: try stepFollower(message)
        }
    }

    /// Raft §5.2 and §5.4.1: grant the vote if we have not voted for someone else in
    /// this term and the candidate's log is at least as up to date as ours.
    mutating func handleVoteRequest(_ request: VoteRequest, from: NodeID) throws {
        let canVote = votedFor == from
            || (votedFor == nil && leader == nil)
            || (request.preVote && request.term > term)
        if canVote, try log.isUpToDate(lastIndex: request.lastLogIndex, lastTerm: request.lastLogTerm) {
            // A granted pre-vote answers with the request's term so the candidate
            // counts it; a real vote is in our (now equal) term.
            send(to: from, .voteResponse(VoteResponse(term: request.term, voteGranted: true, voterID: id, preVote: request.preVote)))
            if !request.preVote {
                electionElapsed = 0
                votedFor = from
            }
        } else {
            send(to: from, .voteResponse(VoteResponse(term: term, voteGranted: false, voterID: id, preVote: request.preVote)))
        }
    }

    mutating func stepCandidate(_ message: RaftMessage) throws {
        switch message.payload {
        case .appendEntries(let request):
            becomeFollower(term: message.term, leader: message.from)
            try handleAppendEntries(request, from: message.from)
        case .heartbeat(let request):
            becomeFollower(term: message.term, leader: message.from)
            handleHeartbeat(request, from: message.from)
        case .installSnapshot(let request):
            becomeFollower(term: message.term, leader: message.from)
            try handleInstallSnapshot(request, from: message.from)
        case .voteResponse(let response):
            // Only answers to the current kind of campaign count.
            guard response.preVote == (role == .preCandidate) else { return }
            tracker.recordVote(message.from, granted: response.voteGranted)
            switch tracker.tallyVotes().result {
            case .won:
                if role == .preCandidate {
                    campaign(preVote: false, transfer: false)
                } else {
                    becomeLeader()
                }
            case .lost:
                becomeFollower(term: term, leader: nil)
            case .pending:
                break
            }
        case .readIndex(_, let context):
            send(to: message.from, .readIndexResponse(term: term, context: context, index: 0))
        default:
            break
        }
    }

    mutating func stepFollower(_ message: RaftMessage) throws {
        switch message.payload {
        case .appendEntries(let request):
            electionElapsed = 0
            leaderContactElapsed = 0
            leader = message.from
            try handleAppendEntries(request, from: message.from)
        case .heartbeat(let request):
            electionElapsed = 0
            leaderContactElapsed = 0
            leader = message.from
            handleHeartbeat(request, from: message.from)
        case .installSnapshot(let request):
            electionElapsed = 0
            leaderContactElapsed = 0
            leader = message.from
            try handleInstallSnapshot(request, from: message.from)
        case .timeoutNow:
            // The leader hands over leadership: campaign at once, skipping pre-vote,
            // and tell voters to ignore their leader lease.
            if isPromotable {
                campaign(preVote: false, transfer: true)
            }
        case .readIndexResponse(_, let context, let index):
            readOnly.resolveForwarded(context: context, index: index, into: &readStates)
        case .readIndex(_, let context):
            send(to: message.from, .readIndexResponse(term: term, context: context, index: 0))
        case .forwardedProposal:
            stats.proposalsDropped += 1
        default:
            break
        }
    }

    /// The follower side of AppendEntries (Raft §5.3), with the conflict hint of fast
    /// backtracking on rejection.
    ///
    /// The request was validated (`RaftMessage.validate()`): its entries follow
    /// `prevLogIndex` contiguously, so whatever reaches the log's append starts at or
    /// before its last index + 1 and after its commit index — input can never make the
    /// storage refuse an append.
    mutating func handleAppendEntries(_ request: AppendEntriesRequest, from: NodeID) throws {
        // Everything up to our commit index must match any later leader's log (Log
        // Matching §5.3, Leader Completeness §5.4). Check the overlap; a conflict there
        // means acknowledged data was lost somewhere: stop for good.
        if let found = findCommittedConflict(request, from: from) { throw diverge(found) }
        if request.prevLogIndex < log.committed {
            leaderConfirmedIndex = max(leaderConfirmedIndex, log.committed)
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(term: term, success: true, followerID: id,
                                                                         matchIndex: log.committed)))
            return
        }
        // `maybeAppend` commits at most `min(leaderCommit, lastNew)`: only entries this
        // append confirmed to match the leader's log.
        if let lastNew = try log.maybeAppend(prevIndex: request.prevLogIndex, prevTerm: request.prevLogTerm,
                                            leaderCommit: request.leaderCommit, entries: request.entries) {
            leaderConfirmedIndex = max(leaderConfirmedIndex, lastNew)
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(term: term, success: true, followerID: id,
                                                                         matchIndex: lastNew)))
            return
        }
        // Reject, with a hint: the largest index <= prevLogIndex whose term is
        // <= prevLogTerm. Every entry after it up to prevLogIndex is certain to
        // mismatch, so the leader can skip them all.
        let probe = min(request.prevLogIndex, try log.lastIndex())
        let hint = log.findConflictByTerm(index: probe, term: request.prevLogTerm)
        send(to: from, .appendEntriesResponse(AppendEntriesResponse(term: term, success: false, followerID: id,
                                                                     rejectedIndex: request.prevLogIndex,
                                                                     hintIndex: hint.index, hintTerm: hint.term)))
    }

    /// A heartbeat asserts leadership and carries the commit index.
    ///
    /// Raft §5.3: a follower may only commit entries it knows to be in the leader's
    /// log. An entry is known to be there once an append from this leader in this
    /// term succeeded up to it (Log Matching: the same index and term means the same
    /// entries before it). A heartbeat checks nothing about the log — an entry at the
    /// commit index could still be a stale one from an old term, left over from a
    /// deposed leader — so its commit index is clamped to `leaderConfirmedIndex`
    /// (which is itself at most the last index). The honest leader sends
    /// `min(commit, our match)`, which this clamp never cuts, except after this node
    /// restarted and forgot its confirmations: it then asks for an append
    /// (`requestsAppend`), which confirms its log and carries the commit index. If
    /// the commit index is even beyond our last index, we lost entries we had
    /// acknowledged (a wiped disk): `lastIndex` tells the leader where we really are.
    mutating func handleHeartbeat(_ request: HeartbeatRequest, from: NodeID) {
        log.commit(to: min(request.commitIndex, leaderConfirmedIndex))
        let wantsAppend = request.commitIndex > log.committed && request.commitIndex > leaderConfirmedIndex
        send(to: from, .heartbeatResponse(HeartbeatResponse(term: term, followerID: id, context: request.context,
                                                            requestsAppend: wantsAppend, lastIndex: lastIndexOrZero,
                                                            heartbeatCommit: request.commitIndex)))
    }
}
