/// A snapshot being received in chunks (follower side). The bytes are in the
/// `SnapshotReceiver`; this records which snapshot and how far.
struct IncomingSnapshot: Sendable {
    var metadata: SnapshotMetadata
    /// Bytes received so far: the offset of the next chunk.
    /// Invariant: `received <= RaftConfig.maxSnapshotBytes`.
    var received: UInt64
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
            // The offset comes from the follower's answer: clamp before converting.
            let total = snapshot.data.count
            let start = Int(clamping: min(pr.snapshotOffset, UInt64(total)))
            let end = start + min(config.snapshotChunkSize, total - start)
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
            // One chunk in flight at a time: an answer that asks for the chunk already in
            // flight is a duplicate (a duplicated or re-sent message); acting on it would
            // send that chunk twice, and each copy would be answered, doubling the stream.
            if !response.rejected && (!pr.snapshotChunkInFlight || response.nextOffset == pr.snapshotOffset) {
                return .none
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

    /// One chunk of a snapshot from the leader. The request was validated
    /// (`RaftMessage.validate()`): its offset plus its size cannot overflow.
    /// Chunks are reassembled by the `SnapshotReceiver`, at most
    /// `RaftConfig.maxSnapshotBytes` in all.
    mutating func handleInstallSnapshot(_ request: InstallSnapshotRequest, from: NodeID) throws {
        let metadata = request.metadata
        func answer(_ next: UInt64, done: Bool, rejected: Bool = false) {
            send(to: from, .installSnapshotResponse(InstallSnapshotResponse(
                term: term, followerID: id, snapshotIndex: metadata.index, nextOffset: next,
                done: done, rejected: rejected)))
        }
        if metadata.index <= log.committed {
            // Already have everything it covers — if it agrees with what we committed
            // (Leader Completeness, Raft §5.4).
            if let local = try? log.term(at: metadata.index), local != metadata.term {
                throw diverge(Divergence(index: metadata.index, localTerm: local, leaderTerm: metadata.term,
                                         leader: from, term: term, committedIndex: log.committed))
            }
            abortIncomingSnapshot()
            answer(0, done: true)
            return
        }
        let end = request.offset + UInt64(request.data.count)
        if end > config.maxSnapshotBytes {
            // Bounded reassembly: refuse, and drop what we have.
            abortIncomingSnapshot()
            stats.snapshotChunksRefused += 1
            answer(0, done: false, rejected: true)
            return
        }
        if request.offset == 0 {
            abortIncomingSnapshot()
            try receiveSnapshot { try $0.begin(metadata) }
            incomingSnapshot = IncomingSnapshot(metadata: metadata, received: 0)
        }
        guard var incoming = incomingSnapshot, incoming.metadata == metadata else {
            answer(0, done: false, rejected: true)
            return
        }
        if request.offset != incoming.received {
            // A duplicate or a gap (messages are reordered): tell the leader where we are.
            answer(incoming.received, done: false)
            return
        }
        try receiveSnapshot { try $0.append(request.data, at: request.offset) }
        incoming.received = end
        guard request.done else {
            incomingSnapshot = incoming
            answer(end, done: false)
            return
        }
        incomingSnapshot = nil
        var data: [UInt8] = []
        try receiveSnapshot { data = try $0.finish() }
        guard UInt64(data.count) == end else {
            throw RaftError.snapshotReceiveFailed("the receiver returned \(data.count) bytes, expected \(end)")
        }
        restore(Snapshot(metadata: metadata, data: data))
        // The snapshot is the leader's: its last entry is in the leader's log.
        leaderConfirmedIndex = max(leaderConfirmedIndex, metadata.index)
        answer(end, done: true)
    }

    /// Runs one step of the receiver; on failure drops the transfer and throws
    /// `RaftError.snapshotReceiveFailed`.
    mutating func receiveSnapshot(_ body: (any SnapshotReceiver) throws -> Void) throws {
        do {
            try body(snapshotReceiver)
        } catch {
            snapshotReceiver.abort()
            incomingSnapshot = nil
            throw RaftError.snapshotReceiveFailed("\(error)")
        }
    }

    /// Drops a partial incoming snapshot, if any.
    mutating func abortIncomingSnapshot() {
        if incomingSnapshot != nil { snapshotReceiver.abort() }
        incomingSnapshot = nil
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
        let next = meta.index.saturatingSuccessor
        tracker.apply(conf: meta.confState, next: next)
        stats.snapshotsInstalled += 1
    }
}
