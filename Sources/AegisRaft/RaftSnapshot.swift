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
        guard var pr = tracker.progress[to], pr.recentActive else { return false }
        guard let snapshot = try? log.snapshot(), !snapshot.isEmpty else { return false }
        pr.becomeSnapshot(snapshot.metadata.index)
        tracker.progress[to] = pr
        sendSnapshotChunk(to: to)
        return true
    }

    /// Sends the chunk at the follower's acknowledged offset. If a newer snapshot
    /// replaced the one being sent, the transfer restarts with it.
    mutating func sendSnapshotChunk(to: NodeID) {
        guard var pr = tracker.progress[to], pr.state == .snapshot,
              let snapshot = try? log.snapshot(), !snapshot.isEmpty else { return }
        if snapshot.metadata.index != pr.pendingSnapshot {
            pr.becomeSnapshot(snapshot.metadata.index)
        }
        let total = snapshot.data.count
        let start = min(Int(pr.snapshotOffset), total)
        let end = min(start + config.snapshotChunkSize, total)
        send(to: to, .installSnapshot(InstallSnapshotRequest(term: term, leaderID: id, metadata: snapshot.metadata,
                                                             offset: UInt64(start), data: Array(snapshot.data[start..<end]),
                                                             done: end == total)))
        pr.snapshotChunkInFlight = true
        pr.snapshotTicks = 0
        tracker.progress[to] = pr
    }

    mutating func handleInstallSnapshotResponse(_ response: InstallSnapshotResponse, from: NodeID) {
        guard var pr = tracker.progress[from] else { return }
        pr.recentActive = true
        guard pr.state == .snapshot, response.snapshotIndex == pr.pendingSnapshot else {
            tracker.progress[from] = pr
            return
        }
        if response.done && !response.rejected {
            _ = pr.maybeUpdate(response.snapshotIndex)
            pr.becomeProbe()
            tracker.progress[from] = pr
            maybeSendAppend(to: from, sendIfEmpty: true)
            return
        }
        pr.snapshotOffset = response.rejected ? 0 : response.nextOffset
        pr.snapshotChunkInFlight = false
        tracker.progress[from] = pr
        sendSnapshotChunk(to: from)
    }

    /// The snapshot apply timeout: a chunk (the last one includes the follower's
    /// install) not answered within `snapshotApplyTimeout` ticks is re-sent from the
    /// last acknowledged offset; the transfer never restarts from scratch on its own.
    mutating func tickSnapshotTransfers() {
        for member in tracker.ids where member != id {
            guard var pr = tracker.progress[member], pr.state == .snapshot, pr.snapshotChunkInFlight else { continue }
            pr.snapshotTicks += 1
            tracker.progress[member] = pr
            if pr.snapshotTicks >= config.snapshotApplyTimeout {
                sendSnapshotChunk(to: member)
            }
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
