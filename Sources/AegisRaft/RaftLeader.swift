extension RaftCore {
    // MARK: Proposals

    /// Proposes an application command. On the leader it is appended to the log and
    /// replicated with the next `Ready`; on a follower it is forwarded to the leader
    /// when `RaftConfig.forwardProposals` is set, and refused with
    /// `RaftError.notLeader` otherwise.
    ///
    /// - Parameter timestamp: wall-clock milliseconds recorded in the entry (the
    ///   shell's clock; the core has none).
    ///
    /// Throws `RaftError.diverged` once the node has diverged (`divergence`).
    @discardableResult
    public mutating func propose(_ data: [UInt8], timestamp: UInt64 = 0) throws -> Proposal {
        try proposeEntries([LogEntry(index: 0, term: 0, type: .command, data: data, timestamp: timestamp)])
    }

    /// Proposes several commands at once (one append, one uncommitted-bytes check).
    /// Returns the index of the last one.
    @discardableResult
    public mutating func propose(batch: [[UInt8]], timestamp: UInt64 = 0) throws -> Proposal {
        try proposeEntries(batch.map { LogEntry(index: 0, term: 0, type: .command, data: $0, timestamp: timestamp) })
    }

    mutating func proposeEntries(_ entries: [LogEntry]) throws -> Proposal {
        if let divergenceRecord { throw RaftError.diverged(divergenceRecord) }
        switch role {
        case .leader:
            if let target = leadTransferee {
                stats.proposalsDropped += 1
                throw RaftError.proposalDropped(reason: "leadership is being transferred to \(target)")
            }
            if tracker.progress[id] == nil {
                stats.proposalsDropped += 1
                throw RaftError.proposalDropped(reason: "this leader has been removed from the configuration")
            }
            let last = try appendLeaderEntries(entries)
            return .appended(index: last, term: term)
        default:
            guard let leader else {
                stats.proposalsDropped += 1
                throw RaftError.notLeader(leader: nil)
            }
            guard config.forwardProposals else { throw RaftError.notLeader(leader: leader) }
            send(to: leader, .forwardedProposal(term: term, entries: entries))
            return .forwarded(to: leader)
        }
    }

    /// Appends entries as leader (assigning index and term) and schedules their
    /// replication. The leader's own progress is raised only once the shell reports
    /// them persisted (`advance`), which is what makes sending before the local write
    /// safe: a quorum never counts a leader copy that could still be lost.
    @discardableResult
    mutating func appendLeaderEntries(_ entries: [LogEntry]) throws -> LogIndex {
        var last = try log.lastIndex()
        var bytes = 0
        for e in entries where e.type == .command { bytes += e.data.count }
        if config.maxUncommittedBytes > 0 && uncommittedBytes > 0 && uncommittedBytes + bytes > config.maxUncommittedBytes {
            stats.proposalsDropped += 1
            throw RaftError.uncommittedLimitExceeded(limit: config.maxUncommittedBytes)
        }
        var stamped = entries
        for k in stamped.indices {
            last += 1
            stamped[k].index = last
            stamped[k].term = term
        }
        try log.append(stamped[...])
        uncommittedBytes += bytes
        pendingBroadcast = true
        return last
    }

    /// Releases the uncommitted-bytes budget of entries that were applied.
    mutating func reduceUncommittedBytes(_ entries: [LogEntry]) {
        guard role == .leader else { return }
        var bytes = 0
        for e in entries where e.type == .command && e.term == term { bytes += e.data.count }
        uncommittedBytes = max(0, uncommittedBytes - bytes)
    }

    // MARK: Leader message handling

    mutating func stepLeader(_ message: RaftMessage) throws {
        let from = message.from
        switch message.payload {
        case .appendEntriesResponse(let response):
            try handleAppendResponse(response, from: from)
        case .heartbeatResponse(let response):
            handleHeartbeatResponse(response, from: from)
        case .installSnapshotResponse(let response):
            handleInstallSnapshotResponse(response, from: from)
        case .readIndex(_, let context):
            handleReadIndexRequest(context: context, from: from)
        case .forwardedProposal(_, let entries):
            do {
                _ = try proposeEntries(entries)
            } catch {
                // The follower's client learns of the loss by its own timeout.
            }
        default:
            break
        }
    }

    mutating func handleAppendResponse(_ response: AppendEntriesResponse, from: NodeID) throws {
        if !response.success {
            // Fast backtracking: jump to the leader's last entry whose term is <= the
            // follower's term at its hint index.
            var nextProbe = response.hintIndex
            if response.hintTerm > 0 {
                nextProbe = log.findConflictByTerm(index: response.hintIndex, term: response.hintTerm).index
            }
            let decreased = tracker.update(from) { pr -> Bool in
                pr.recentActive = true
                guard pr.maybeDecrease(rejected: response.rejectedIndex, hint: nextProbe) else { return false }
                if pr.state == .replicate { pr.becomeProbe() }
                return true
            }
            if decreased == true { maybeSendAppend(to: from, sendIfEmpty: true) }
            return
        }
        let firstIndex = try log.firstIndex()
        let outcome = tracker.update(from) { pr -> (updated: Bool, wasPaused: Bool, match: LogIndex) in
            pr.recentActive = true
            let wasPaused = pr.isPaused
            guard pr.maybeUpdate(response.matchIndex) else { return (false, wasPaused, pr.match) }
            switch pr.state {
            case .probe:
                pr.becomeReplicate()
            case .snapshot:
                if pr.match.saturatingSuccessor >= firstIndex {
                    pr.becomeProbe()
                    pr.becomeReplicate()
                }
            case .replicate:
                pr.inflights.freeLE(response.matchIndex)
            }
            return (true, wasPaused, pr.match)
        }
        guard let outcome, outcome.updated else { return }
        if maybeCommit() {
            broadcastAppend()
        } else if outcome.wasPaused {
            // The follower may have missed commit updates while paused.
            maybeSendAppend(to: from, sendIfEmpty: true)
        }
        // Fill the pipeline.
        while maybeSendAppend(to: from, sendIfEmpty: false) {}
        if from == leadTransferee, outcome.match == (try log.lastIndex()) {
            sendTimeoutNow(to: from)
        }
    }

    mutating func handleHeartbeatResponse(_ response: HeartbeatResponse, from: NodeID) {
        let last = (try? log.lastIndex()) ?? 0
        let heartbeat = periodicHeartbeats
        let needsAppend = tracker.update(from) { pr -> Bool in
            pr.recentActive = true
            if response.lastIndex < response.heartbeatCommit && response.lastIndex < pr.match {
                // The follower holds less than an index it acknowledged in this term
                // (the heartbeat's commit is at most its match): it lost data (a wiped
                // or restored disk). Stop counting what it no longer has and probe from
                // its real end, or appends would never go below the old match. The
                // proof does not depend on when the answer arrives, so a late or
                // duplicated answer cannot lower a match by mistake (simulator seed
                // 1116: comparing with the current match did, and a removed node's
                // acknowledged entries stopped counting).
                pr.lowerMatch(to: response.lastIndex)
            }
            pr.heartbeatAnswered(heartbeat: heartbeat)
            return pr.match < last || pr.state == .probe || response.requestsAppend
        }
        if needsAppend == true { maybeSendAppend(to: from, sendIfEmpty: true) }
        if response.context != 0 {
            acknowledgeReadRound(context: response.context, from: from)
        }
    }

    /// Commits the highest index replicated on a quorum if it is from this term.
    /// Returns `true` if the commit index moved.
    mutating func maybeCommit() -> Bool {
        let index = tracker.committedIndex()
        guard index != .max else { return false }
        let moved = log.maybeCommit(index, term: term)
        if moved { releaseReadsWaitingForCommit() }
        return moved
    }

    // MARK: Sending

    /// Sends appends (or commit updates) to every member.
    mutating func broadcastAppend() {
        for member in tracker.ids where member != id {
            maybeSendAppend(to: member, sendIfEmpty: true)
        }
        pendingBroadcast = false
    }

    /// Sends the next append to `to` if its progress allows. With `sendIfEmpty` an
    /// append without entries is sent too (to probe, or to carry the commit index).
    /// Returns `true` if a message was sent.
    @discardableResult
    mutating func maybeSendAppend(to: NodeID, sendIfEmpty: Bool) -> Bool {
        guard let next = tracker.update(to, { $0.isPaused ? nil : $0.next }), let next else { return false }
        let prevIndex = next.saturatingPredecessor  // Invariant: next >= 1
        let prevTerm: Term
        let entries: [LogEntry]
        do {
            prevTerm = try log.term(at: prevIndex)
            entries = try log.entries(from: next, maxBytes: config.maxSizePerMessage)
        } catch {
            // The entries the follower needs were compacted: send a snapshot.
            return startSnapshotTransfer(to: to)
        }
        if entries.isEmpty && !sendIfEmpty { return false }
        var bytes = 0
        for e in entries { bytes += e.byteSize }
        send(to: to, .appendEntries(AppendEntriesRequest(term: term, leaderID: id, prevLogIndex: prevIndex,
                                                         prevLogTerm: prevTerm, entries: entries,
                                                         leaderCommit: log.committed)))
        let last = entries.last?.index ?? prevIndex
        let heartbeat = periodicHeartbeats
        tracker.update(to) { $0.sentEntries(lastIndex: last, count: entries.count, bytes: bytes, heartbeat: heartbeat) }
        return true
    }

    /// Sends a heartbeat to every member, optionally carrying a read round.
    mutating func broadcastHeartbeat(context: UInt64) {
        for member in tracker.ids where member != id {
            guard let pr = tracker.progress[member] else { continue }
            let commit = min(pr.match, log.committed)
            send(to: member, .heartbeat(HeartbeatRequest(term: term, leaderID: id, commitIndex: commit, context: context)))
        }
    }

    // MARK: Leadership transfer

    /// Hands leadership to `target` (Raft thesis §3.10): stops accepting proposals,
    /// brings the target up to date, then tells it to campaign at once. Gives up after
    /// an election timeout.
    public mutating func transferLeadership(to target: NodeID) throws {
        guard role == .leader else { throw RaftError.notLeader(leader: leader) }
        guard target != id else { return }
        guard tracker.isVoter(target), let pr = tracker.progress[target] else {
            throw RaftError.invalidConfigChange("\(target) is not a voter and cannot become leader")
        }
        if leadTransferee == target { return }
        abortLeaderTransfer()
        leadTransferee = target
        transferElapsed = 0
        electionElapsed = 0
        stats.transfersStarted += 1
        if pr.match == (try log.lastIndex()) {
            sendTimeoutNow(to: target)
        } else {
            maybeSendAppend(to: target, sendIfEmpty: true)
        }
    }

    mutating func abortLeaderTransfer() {
        leadTransferee = nil
        transferElapsed = 0
    }

    /// Failback to a preferred leader: if a voter with a higher priority is active and
    /// fully caught up, hand leadership to it. Priorities are learned from
    /// `setPriority(_:of:)`.
    mutating func maybeTransferToPreferred() {
        guard role == .leader, leadTransferee == nil, !priorities.isEmpty else { return }
        let myPriority = priorities[id] ?? config.priority
        guard let last = try? log.lastIndex() else { return }
        var best: (NodeID, Int)?
        for member in tracker.ids where member != id && tracker.isVoter(member) {
            guard let p = priorities[member], p > myPriority,
                  let pr = tracker.progress[member], pr.recentActive, pr.match == last else { continue }
            if best == nil || p > best?.1 ?? Int.min { best = (member, p) }
        }
        if let (target, _) = best { try? transferLeadership(to: target) }
    }

    /// Records the leadership priority of a member (higher is preferred). The leader
    /// moves leadership to a caught-up member of higher priority (failback).
    public mutating func setPriority(_ priority: Int, of node: NodeID) {
        priorities[node] = priority
    }
}
