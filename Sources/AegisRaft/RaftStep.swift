extension RaftCore {
    /// Processes a message from another node. Messages from older terms are answered
    /// or ignored as Raft requires; messages from newer terms update this node's term
    /// first (Raft §5.1).
    public mutating func step(_ message: RaftMessage) throws {
        guard message.to == id else {
            throw RaftError.invalidMessage("message for \(message.to) delivered to \(id)")
        }
        guard message.from != id else { throw RaftError.invalidMessage("message from this node to itself") }
        let messageTerm = message.term
        if messageTerm > term {
            if case .vote(let request) = message.payload {
                // Leader lease (Raft thesis §4.2.3): a node that heard from a leader
                // within the election timeout ignores campaigns, unless the campaign
                // comes from a leadership transfer.
                let inLease = config.checkQuorum && leader != nil && electionElapsed < config.electionTimeout
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
            leader = message.from
            try handleAppendEntries(request, from: message.from)
        case .heartbeat(let request):
            electionElapsed = 0
            leader = message.from
            handleHeartbeat(request, from: message.from)
        case .installSnapshot(let request):
            electionElapsed = 0
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
    mutating func handleAppendEntries(_ request: AppendEntriesRequest, from: NodeID) throws {
        if request.prevLogIndex < log.committed {
            // Everything up to our commit index matches any leader's log (Raft §5.4).
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(term: term, success: true, followerID: id,
                                                                         matchIndex: log.committed)))
            return
        }
        if let lastNew = try log.maybeAppend(prevIndex: request.prevLogIndex, prevTerm: request.prevLogTerm,
                                            leaderCommit: request.leaderCommit, entries: request.entries) {
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

    mutating func handleHeartbeat(_ request: HeartbeatRequest, from: NodeID) {
        // The leader sends min(commit, our match), so this never passes our log.
        log.commit(to: request.commitIndex)
        send(to: from, .heartbeatResponse(HeartbeatResponse(term: term, followerID: id, context: request.context)))
    }
}
