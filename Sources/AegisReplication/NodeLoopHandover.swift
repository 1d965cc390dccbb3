import AegisCluster
import AegisRaft
import AegisTransport
import Logging

// The node loop's graceful stop (leadership handover) and its cluster view.
extension NodeLoop {
    // MARK: Graceful stop

    /// A stop that loses nothing (as etcd does on shutdown): a leader first hands
    /// leadership to the most caught-up voter and keeps serving until another node
    /// leads, plus a linger (`lingerTicks`) in which it answers what
    /// followers forwarded to it before they learnt of the change (they forward it
    /// again to the new leader). The whole is bounded by
    /// `NodeConfiguration.handoverTimeout`. A follower stops at once, unless it stepped
    /// down less than a linger ago (`NodeRuntime.handOverLeadership()` ran first): it
    /// lingers until then.
    func beginHandover() {
        guard handover == nil else { return }
        let deadline = tickCount + ticks(config.handoverTimeout)
        guard core.isLeader else {
            handover = (deadline, max(tickCount - lingerTicks, lastSteppedDownAt ?? Int.min))
            return
        }
        handover = (deadline, nil)
        do {
            let target = try bestTransferTarget()
            try core.transferLeadership(to: target)
            logger.notice("stopping: handing leadership over first", metadata: [
                "target": "\(target)", "timeout": "\(config.handoverTimeout)"])
        } catch {
            logger.notice("stopping without handing leadership over", metadata: ["reason": "\(error)"])
            handover = (deadline, tickCount - lingerTicks)
        }
    }

    /// `true` while this node leads and hands leadership over (a transfer in progress, or
    /// a graceful stop, between two transfers too): it appends nothing — its clients'
    /// writes wait for the next leader, forwarded writes are refused so that their
    /// followers forward them again, no expiry purge starts — since an entry appended
    /// now could be cut off by the new leader's term.
    var leaderIsLeaving: Bool { core.isLeader && (core.leadTransferee != nil || handover != nil) }

    /// A stopping leader whose transfer the core gave up (the target did not win within
    /// an election timeout: it was behind, or its election failed) tries again, with
    /// the voter that is most caught up now, until the handover's deadline. Meanwhile
    /// it appends nothing (`leaderIsLeaving`): an entry appended between two transfers
    /// could be cut off by the new leader's term (a rolling restart whose
    /// leader's stop took 152 ms, just past its 150 ms election timeout, answered two
    /// writes TRYAGAIN: what that would do; `HandoverRetryTests` shows the mechanism).
    func continueHandover() {
        guard let (deadline, steppedDownAt) = handover, steppedDownAt == nil, core.isLeader, core.leadTransferee == nil,
              tickCount < deadline else { return }
        do {
            let target = try bestTransferTarget()
            try core.transferLeadership(to: target)
            logger.notice("stopping: the last transfer did not complete; handing leadership over again",
                          metadata: ["target": "\(target)"])
        } catch {
            logger.warning("stopping: cannot hand leadership over", metadata: ["reason": "\(error)"])
        }
    }

    /// Ticks a former leader keeps answering forwarded requests after it stepped down:
    /// half an election timeout, at least two heartbeat intervals (followers wait a whole
    /// election timeout for its answers, see `roleChanged`).
    var lingerTicks: Int { max(2 * max(1, config.raft.heartbeatInterval), config.raft.electionTimeout / 2) }

    /// `true` once a graceful stop may end: the handover completed and the linger
    /// passed, or the handover timed out.
    var handoverFinished: Bool {
        guard let (deadline, steppedDownAt) = handover else { return false }
        if tickCount >= deadline {
            if core.isLeader { logger.warning("stopping while still the leader: the handover did not complete in time") }
            return true
        }
        guard let steppedDownAt else { return false }
        return tickCount >= steppedDownAt + lingerTicks
    }

    /// `duration` in ticks, at least 1.
    func ticks(_ duration: Duration) -> Int {
        let d = duration.components, t = config.tickInterval.components
        let total = Double(d.seconds) + Double(d.attoseconds) / 1e18
        let tick = Double(t.seconds) + Double(t.attoseconds) / 1e18
        return max(1, Int((total / max(tick, 1e-9)).rounded(.up)))
    }

    // MARK: Cluster view

    /// Sends every other member this node's `PeerStatusReport` (see `ClusterView`), and
    /// brings the view in line with the configuration and asks its failure detector.
    func reportToPeers() {
        let conf = core.confState
        clusterView?.sync(conf: conf, addresses: peerAddresses, leader: core.leader, term: core.term)
        clusterView?.checkFailures()
        let last = (try? core.log.lastIndex()) ?? 0
        var progress: [NodeID: LogIndex] = [:]
        if core.isLeader {
            for id in conf.allMembers.prefix(PeerStatusReport.maxProgressEntries) {
                progress[id] = id == config.nodeID ? last : core.progress(of: id)?.match
            }
        }
        let report = PeerStatusReport(term: core.term, commitIndex: core.log.committed,
                                      appliedIndex: min(machine.appliedIndex, core.log.committed),
                                      lastIndex: last, progress: progress)
        for id in conf.allMembers where id != config.nodeID {
            transport.send(.peerStatus(report), to: id)
        }
    }

    /// Every member as this node sees it: Raft role, the leader's replication view (its
    /// own on the leader, the leader's last report elsewhere), and the failure
    /// detector's status; then the members removed recently, as `left`.
    func memberStatuses(conf: ConfState, last: LogIndex) -> [MemberStatus] {
        var members = conf.allMembers.map { id in
            let progress = core.progress(of: id)
            var match = progress?.match
            var lag = progress.map { last > $0.match ? last - $0.match : 0 }
            if progress == nil, let (leaderMatch, leaderLast) = clusterView?.leaderProgress(of: id, leader: core.leader) {
                match = leaderMatch
                lag = leaderLast > leaderMatch ? leaderLast - leaderMatch : 0
            }
            return MemberStatus(id: id, isVoter: conf.voters.contains(id) || conf.outgoingVoters.contains(id),
                                match: match, next: progress?.next, state: progress?.state, lag: lag,
                                address: peerAddresses[id], health: clusterView?.status(of: id),
                                lastHeard: clusterView?.silence(of: id))
        }
        for gone in clusterView?.departed ?? [] where !conf.allMembers.contains(gone.id) {
            members.append(MemberStatus(id: gone.id, isVoter: false, address: peerAddresses[gone.id], health: .left))
        }
        return members
    }

    // MARK: Disk

    /// Records one WAL fsync: the runtime metric, the average and the recent ring.
    func recordFsync(nanoseconds: UInt64) {
        metrics.fsync.recordNanoseconds(Int64(clamping: nanoseconds))
        let seconds = Double(nanoseconds) / 1e9
        fsyncAverage = fsyncAverage.map { $0 + (seconds - $0) / 8 } ?? seconds
        if recentFsyncs.count < Self.recentFsyncCapacity {
            recentFsyncs.append(seconds)
        } else {
            recentFsyncs[recentFsyncNext] = seconds
            recentFsyncNext = (recentFsyncNext + 1) % Self.recentFsyncCapacity
        }
    }
}
