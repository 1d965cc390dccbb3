/// A snapshot being received in chunks (follower side).
struct IncomingSnapshot: Sendable {
    var metadata: SnapshotMetadata
    var data: [UInt8]
}

extension RaftCore {
    // MARK: Leader side

    /// Starts sending the current snapshot to a follower whose next entry was
    /// compacted. Returns `true` if a chunk was sent.
    mutating func startSnapshotTransfer(to: NodeID) -> Bool {
        guard let snapshot = try? log.snapshot(), !snapshot.isEmpty else { return false }
        let started = tracker.update(to) { pr -> Bool in
            guard pr.recentActive else { return false }
            pr.becomeSnapshot(snapshot.metadata.index)
            pr.snapshotInTransfer = snapshot
            return true
        }
        guard started == true else { return false }
        sendSnapshotChunk(to: to)
        return true
    }

    /// Sends the chunk at the follower's acknowledged offset of the pinned snapshot.
    mutating func sendSnapshotChunk(to: NodeID) {
        guard let request = tracker.update(to, { pr -> InstallSnapshotRequest? in
            guard pr.state == .snapshot, let snapshot = pr.snapshotInTransfer else { return nil }
            let total = snapshot.data.count
            let start = min(Int(pr.snapshotOffset), total)
            let end = min(start + config.snapshotChunkSize, total)
            pr.snapshotChunkInFlight = true
            pr.snapshotTicks = 0
            return InstallSnapshotRequest(term: term, leaderID: id, metadata: snapshot.metadata, offset: UInt64(start),
                                          data: Array(snapshot.data[start..<end]), done: end == total)
        }), let request else { return }
        send(to: to, .installSnapshot(request))
    }

    /// The lowest index the application may compact the log up to without cutting
    /// away the entries that follow a snapshot being transferred (the follower needs
    /// them right after installing it). `nil`: no limit.
    public var compactionLimit: LogIndex? {
        guard role == .leader else { return nil }
        var limit: LogIndex?
        for member in tracker.ids where member != id {
            guard let pr = tracker.progress[member], pr.state == .snapshot else { continue }
            limit = min(limit ?? pr.pendingSnapshot, pr.pendingSnapshot)
        }
        return limit
    }

    mutating func handleInstallSnapshotResponse(_ response: InstallSnapshotResponse, from: NodeID) {
        enum Next { case none, chunk, append }
        let next = tracker.update(from) { pr -> Next in
            pr.recentActive = true
            guard pr.state == .snapshot, response.snapshotIndex == pr.pendingSnapshot else { return .none }
            pr.snapshotResends = 0
            if response.done && !response.rejected {
                _ = pr.maybeUpdate(response.snapshotIndex)
                pr.becomeProbe()
                return .append
            }
            pr.snapshotOffset = response.rejected ? 0 : response.nextOffset
            pr.snapshotChunkInFlight = false
            return .chunk
        }
        switch next {
        case .chunk: sendSnapshotChunk(to: from)
        case .append: maybeSendAppend(to: from, sendIfEmpty: true)
        default: break
        }
    }

    /// The snapshot apply timeout: a chunk (the last one includes the follower's
    /// install) not answered within `snapshotApplyTimeout` ticks is re-sent from the
    /// last acknowledged offset. After 10 unanswered re-sends the transfer is dropped
    /// (the follower is probed again later), releasing the pinned snapshot and the
    /// compaction limit.
    mutating func tickSnapshotTransfers() {
        for member in tracker.ids where member != id {
            let action = tracker.update(member) { pr -> Int in
                guard pr.state == .snapshot, pr.snapshotChunkInFlight else { return 0 }
                pr.snapshotTicks += 1
                guard pr.snapshotTicks >= config.snapshotApplyTimeout else { return 0 }
                pr.snapshotResends += 1
                if pr.snapshotResends > 10 {
                    pr.becomeProbe()
                    return 0
                }
                return 1
            }
            if action == 1 { sendSnapshotChunk(to: member) }
        }
    }

    // MARK: Follower side

    mutating func handleInstallSnapshot(_ request: InstallSnapshotRequest, from: NodeID) throws {
        let metadata = request.metadata
        func answer(_ next: Int, done: Bool, rejected: Bool = false) {
            send(to: from, .installSnapshotResponse(InstallSnapshotResponse(
                term: term, followerID: id, snapshotIndex: metadata.index, nextOffset: UInt64(next),
                done: done, rejected: rejected)))
        }
        if metadata.index <= log.committed {
            // Already have everything it covers.
            incomingSnapshot = nil
            answer(0, done: true)
            return
        }
        if request.offset == 0 {
            incomingSnapshot = IncomingSnapshot(metadata: metadata, data: [])
        }
        guard var incoming = incomingSnapshot, incoming.metadata == metadata else {
            answer(0, done: false, rejected: true)
            return
        }
        if request.offset != UInt64(incoming.data.count) {
            // A duplicate or a gap: tell the leader where we are.
            answer(incoming.data.count, done: false)
            return
        }
        incoming.data.append(contentsOf: request.data)
        guard request.done else {
            incomingSnapshot = incoming
            answer(incoming.data.count, done: false)
            return
        }
        incomingSnapshot = nil
        restore(Snapshot(metadata: metadata, data: incoming.data))
        answer(incoming.data.count, done: true)
    }

    /// Installs a snapshot from the leader: if the log already has its last entry,
    /// only the commit index moves; otherwise the log is replaced and the snapshot is
    /// handed to the shell in the next `Ready`.
    mutating func restore(_ snapshot: Snapshot) {
        let meta = snapshot.metadata
        if meta.index <= log.committed { return }
        if log.matchTerm(meta.index, meta.term) {
            log.commit(to: meta.index)
            return
        }
        log.restore(snapshot)
        let next = meta.index + 1
        tracker.apply(conf: meta.confState, next: next)
        stats.snapshotsInstalled += 1
    }
}
