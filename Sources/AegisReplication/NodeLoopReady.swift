import Foundation
import AegisCluster
import AegisKV
import AegisStorage
public import AegisRaft
public import AegisTransport
import Logging

extension NodeLoop: ReadyShell {
    // MARK: Ready (the shell's steps; `ReadyExecutor` orders them)

    func nextReady() throws -> Ready? {
        guard core.hasReady else { return nil }
        let started = LoopTimings.now()
        defer { timings.readyNanos &+= LoopTimings.since(started); timings.readies += 1 }
        return try core.ready()
    }

    func send(_ messages: [RaftMessage]) {
        let started = LoopTimings.now()
        defer { timings.sendNanos &+= LoopTimings.since(started); timings.sentMessages += messages.count }
        // A node waiting to be added does not vote.
        if awaitingAdd {
            let kept = messages.filter { if case .vote = $0.payload { return false } else { return true } }
            if !kept.isEmpty { transport.send(kept) }
        } else {
            transport.send(messages)
        }
    }

    func installSnapshot(_ snapshot: Snapshot) throws {
        try storage.applySnapshot(snapshot)
        try machine.restore(from: snapshot)
        memberView = nil  // the snapshot may carry another membership
        lastSnapshotBytes = snapshot.data.count
        appliedBytesSinceSnapshot = 0
        recentResults.removeAll()
        replaySlabs = nil  // the restored machine takes no slabs from it
        logger.info("installed a snapshot from the leader", metadata: ["index": "\(snapshot.metadata.index)"])
    }

    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        let started = LoopTimings.now()
        try storage.persist(hardState: hardState, entries: entries, sync: sync)
        let took = LoopTimings.since(started)
        if sync { recordFsync(nanoseconds: took) }
        timings.persistNanos &+= took
        timings.persistedEntries += entries.count
        for entry in entries { timings.persistedBytes &+= entry.data.count }
        if sync { timings.fsyncs += 1 }
    }

    func apply(_ entries: [LogEntry]) throws {
        let started = LoopTimings.now()
        // In groups whose table probes are loaded together first (`StateMachine.warm`).
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + 128, entries.endIndex)
            warmSink &+= machine.warm(for: entries[start ..< end])
            for entry in entries[start ..< end] { apply(entry) }
            start = end
        }
        if replaySlabs != nil && machine.appliedIndex >= replayTarget {
            machine.takeArenaSlabs(from: nil)
            replaySlabs = nil  // stops its thread
        }
        timings.applyNanos &+= LoopTimings.since(started)
        timings.appliedEntries += entries.count
    }

    /// Takes confirmed read points and serves those already applied: this runs before
    /// the `Ready`'s own fsync when nothing in it is left to apply
    /// (`ReadyExecutor.begin(_:shell:)`), so reads do not wait behind the disk.
    func accept(_ readStates: [ReadState]) {
        for state in readStates {
            if let (request, _) = pendingReads.removeValue(forKey: state.context) {
                readyReads.append((request, state.index))
            }
        }
        serveReadyReads()
    }

    func softStateChanged(_ state: SoftState) { roleChanged(state) }

    func advance(_ ready: Ready) { core.advance(ready) }

    func advanced(_ ready: Ready) throws {
        serveReadyReads()
        if ready.shouldSnapshot { try takeSnapshot() }
    }


    /// Handles every pending `Ready` through the shared `ReadyExecutor` (the one
    /// implementation of the order: leader appends at once, persist with fsync when
    /// needed, send the rest, apply, advance), with this loop as the shell.
    func processReadies() {
        do {
            try executor.run(self)
        } catch StorageError.noSpace(let path, let needed, let available) {
            // Nothing of the failed Ready was written, sent (after the leader's appends)
            // or applied, and it was not advanced: the core hands it out again. Retry on
            // a later tick; refuse client writes meanwhile (`submit`).
            diskFullSince = diskFullSince ?? tickCount
            if lastDiskFullWarningTick.map({ tickCount - $0 >= config.raft.electionTimeout * 10 }) ?? true {
                lastDiskFullWarningTick = tickCount
                logger.error("the disk is full: writes are refused until space is freed", metadata: [
                    "path": "\(path)", "needed": "\(needed)", "available": "\(available)"])
            }
            return
        } catch {
            stopOnStorageFailure(error)
            return
        }
        if let since = diskFullSince {
            diskFullSince = nil
            logger.notice("disk space is back: writes resume", metadata: ["fullForTicks": "\(tickCount - since)"])
        }
        if core.stats.campaigns != lastCampaigns {
            metrics.elections.increment(by: core.stats.campaigns - lastCampaigns)
            lastCampaigns = core.stats.campaigns
        }
        metrics.applyLag.record(Double(core.log.committed - machine.appliedIndex))
    }

    /// Applies one committed entry and answers the writes waiting on its index.
    func apply(_ entry: LogEntry) {
        guard entry.index > machine.appliedIndex else { return }
        if entry.type == .configChange { configurationEntryApplied(entry) }
        let result = machine.apply(entry)
        appliedBytesSinceSnapshot &+= entry.data.count
        applyObserver?(entry)
        if entry.type == .command, let onApplied = config.onApplied { onApplied(entry, result) }
        metrics.commits.increment()
        if entry.type == .command && entry.index > replayTarget {
            recentResults.record(entry.index, term: entry.term, result: result)
        }
        guard let waiters = pendingWrites.removeValue(forKey: entry.index) else { return }
        for (term, waiter) in waiters {
            if term == entry.term {
                waiter.resume(.success(result))
            } else {
                waiter.resume(.failure(ReplicationError.lost))
            }
        }
    }

    /// Membership entries carry the address of an added member in their context; the
    /// transport learns it (and forgets removed members) on every node.
    func configurationEntryApplied(_ entry: LogEntry) {
        memberView = nil  // the membership changed: the next status shows it
        if let pending = confChangesPending.removeValue(forKey: entry.index) {
            if pending.term == entry.term {
                pending.continuation.resume()
            } else {
                pending.continuation.resume(throwing: ReplicationError.lost)
            }
        }
        guard let change = try? ConfChange(decoding: entry.data) else { return }
        if awaitingAdd && change.changes.contains(where: { $0.node == config.nodeID && $0.type != .removeNode }) {
            awaitingAdd = false
            logger.notice("this node was added to the cluster; it takes part in elections from now on",
                          metadata: ["index": "\(entry.index)"])
            config.onAdded?()
        }
        let address = MemberAddress(parsing: String(decoding: change.context, as: UTF8.self))
        for single in change.changes {
            switch single.type {
            case .addVoter, .addLearner:
                if let address {
                    peerAddresses[single.node] = address
                    if single.node != config.nodeID, let peer = PeerAddress(parsing: address.peer) {
                        (transport as? any PeerDirectory)?.setPeer(single.node, address: peer)
                    }
                }
            case .removeNode:
                if single.node != config.nodeID {
                    peerAddresses[single.node] = nil
                    (transport as? any PeerDirectory)?.removePeer(single.node)
                }
            }
        }
    }

    func roleChanged(_ soft: SoftState) {
        if soft.leader != lastLeader {
            // Requests forwarded to the old leader: it may have appended them, so only
            // its answer tells (a leader handing over lingers to give it; "not the
            // leader" means not appended, and the request is forwarded again). Wait an
            // election timeout for it; without one the outcome is unknown (`timeout`:
            // the client reads before retrying).
            let grace = tickCount + max(1, config.raft.electionTimeout)
            for (id, entry) in forwarded where entry.leader != soft.leader && entry.answerDeadline == nil {
                forwarded[id]?.answerDeadline = grace
            }
            // Reads are safe to repeat: ask the new leader for a read index.
            // In request order: dictionary order differs from run to run (per-instance
            // seeds), and the simulator must replay a seed exactly.
            for (_, entry) in pendingReads.sorted(by: { $0.key < $1.key }) { readsWaitingForLeader.append(entry) }
            pendingReads = [:]
            if lastLeader == config.nodeID, !core.isLeader { lastSteppedDownAt = tickCount }
            if handover != nil, handover?.steppedDownAt == nil, !core.isLeader, soft.leader != nil {
                handover?.steppedDownAt = tickCount
            }
            metrics.leaderChanges.increment()
            logger.info("leader changed", metadata: ["leader": "\(soft.leader.map(\.rawValue) ?? "none")",
                                                     "role": "\(soft.role.rawValue)", "term": "\(core.term)"])
            lastLeader = soft.leader
        }
        if soft.leader != nil {
            retryWaitingForLeader()
            retryRefusedForwards()
        }
        // A transfer completed when the target leads.
        transfersPending.removeAll { target, continuation, _ in
            guard soft.leader == target else { return false }
            continuation.resume()
            return true
        }
    }

    /// Starts a snapshot of the state machine at the applied index, serialized and
    /// written off the loop: the loop hands the runner a copy of the state machine (a
    /// copy-on-write value: the loop's next write copies what it changes, the snapshot
    /// reads the rest) and goes on serving. The log is compacted when the snapshot is
    /// durable (`snapshotFinished`). One at a time; a request while one runs is skipped
    /// (the core asks again after `snapshotThreshold` more entries), and so is one the
    /// log applied since the last snapshot is too small for
    /// (`NodeConfiguration.snapshotLogFraction`), and so is one while a restart replays
    /// its log (`replayTarget`): the snapshot's thread would compete with the replay for
    /// the cores, and the replay's next write would copy the table the snapshot shares
    /// (a restart of a 3.6M-key follower started one 1.4 s into its 1.9 s replay).
    /// `force` (an operator's or a DR primary's request) skips the size and replay rules.
    func takeSnapshot(force: Bool = false) throws {
        let index = core.appliedIndex
        guard snapshotInFlight == nil, index == machine.appliedIndex, index > 0 else { return }
        guard force || machine.appliedIndex >= replayTarget else { return }
        let fraction = config.snapshotLogFraction * Self.snapshotStagger(config.nodeID)
        guard force || Double(appliedBytesSinceSnapshot) >= fraction * Double(lastSnapshotBytes) else {
            return
        }
        snapshotInFlight = index
        appliedBytesSinceSnapshot = 0
        let view = machine
        let conf = core.confState
        let storage = self.storage
        let done = snapshotDone
        snapshotRunner {
            let started = DispatchTime.now().uptimeNanoseconds
            let result: Result<Int, any Error>
            do {
                // Streamed into the file one chunk at a time: the whole snapshot is never
                // in memory (it is as large as the state).
                let chunks = view.snapshotChunks()
                let bytes = chunks.byteCount
                try storage.createSnapshot(at: index, conf: conf, byteCount: bytes, chunks: chunks)
                result = .success(bytes)
            } catch {
                result = .failure(error)
            }
            done(SnapshotOutcome(index: index, result: result,
                                 seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
        }
    }

    /// The factor (1, 0.875, 0.75 or 0.625, fixed per node ID) on
    /// `NodeConfiguration.snapshotLogFraction` for this node: the members of a cluster
    /// apply the same entries, so with one threshold they all took their snapshots at the
    /// same index, and on a shared machine the three serializations starved the loops
    /// together (the leader lost its place under load). Staggered, they drift apart
    /// after the first few snapshots, so a quorum is rarely busy at once. Never above 1:
    /// the fraction is also the bound on the log held in memory and replayed on restart.
    static func snapshotStagger(_ node: NodeID) -> Double {
        var hash: UInt32 = 2_166_136_261  // FNV-1a: stable across runs and platforms
        for byte in node.rawValue.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return 1 - Double(hash % 4) / 8
    }

    /// A snapshot taken off the loop is durable (or failed): compact the log behind it,
    /// within what a transfer in progress still needs (`RaftCore.compactionIndex`).
    func snapshotFinished(_ outcome: SnapshotOutcome) {
        snapshotInFlight = nil
        switch outcome.result {
        case .success(let bytes):
            lastSnapshotBytes = bytes
            var upTo = core.compactionIndex(afterSnapshotAt: outcome.index)
            if let floor = config.compactionFloor?(), upTo > floor {
                if upTo - floor <= config.maxEntriesHeldForArchiving {
                    upTo = floor
                } else {
                    logger.warning("WAL archiving is too far behind: the log is compacted past what it shipped",
                                   metadata: ["archived": "\(floor)", "compacted_to": "\(upTo)"])
                }
            }
            do {
                if upTo > 0 { try storage.compact(upTo: upTo) }
            } catch StorageError.noSpace(let path, _, let available) {
                logger.warning("no space to compact the log; it is compacted at the next snapshot",
                               metadata: ["path": "\(path)", "available": "\(available)"])
            } catch {
                stopOnStorageFailure(error)
                return
            }
            compacted()
            logger.info("took a snapshot", metadata: [
                "index": "\(outcome.index)", "bytes": "\(bytes)", "seconds": "\(outcome.seconds)"])
        case .failure(StorageError.noSpace(let path, _, let available)):
            logger.warning("no space for a snapshot; it is skipped until the next one",
                           metadata: ["path": "\(path)", "available": "\(available)"])
        case .failure(RaftError.snapshotTemporarilyUnavailable):
            // A newer snapshot (one from the leader) was installed meanwhile.
            break
        case .failure(let error):
            stopOnStorageFailure(error)
        }
    }

    func stopOnStorageFailure(_ error: any Error) {
        logger.critical("storage failed; the node stops (it must not run on a page cache it cannot trust)",
                        metadata: ["error": "\(error)"])
        failure = .storageFailed("\(error)")
    }

    // MARK: Admin

    func handleAdmin(_ request: AdminRequest) {
        switch request {
        case .confChange(let change, let continuation):
            do {
                guard core.isLeader else { throw ReplicationError.notLeader(leader: core.leader) }
                if case .appended(let index, let term) = try core.proposeConfChange(change) {
                    confChangesPending[index] = (term, continuation, tickCount + timeoutTicks)
                    for single in change.changes where single.type == .removeNode {
                        clusterView?.pendingRemovals.insert(single.node)
                    }
                } else {
                    continuation.resume(throwing: ReplicationError.notLeader(leader: core.leader))
                }
            } catch {
                continuation.resume(throwing: mapRaftError(error))
            }
        case .transfer(let target, let continuation):
            do {
                guard core.isLeader else { throw ReplicationError.notLeader(leader: core.leader) }
                let chosen = try target ?? bestTransferTarget()
                try core.transferLeadership(to: chosen)
                transfersPending.append((chosen, continuation, tickCount + timeoutTicks))
            } catch {
                continuation.resume(throwing: mapRaftError(error))
            }
        case .snapshot(let continuation):
            do {
                try takeSnapshot(force: true)
                continuation.resume()
            } catch {
                continuation.resume(throwing: mapRaftError(error))
            }
        }
    }

    /// The most caught-up other voter, preferring those the leader heard from recently.
    func bestTransferTarget() throws -> NodeID {
        let voters = core.confState.voters.sorted().filter { $0 != config.nodeID }
        let active = voters.filter { core.progress(of: $0)?.recentActive ?? false }
        let best = (active.isEmpty ? voters : active).max {
            (core.progress(of: $0)?.match ?? 0) < (core.progress(of: $1)?.match ?? 0)
        }
        guard let best else { throw ReplicationError.rejected("there is no other voter to transfer leadership to") }
        return best
    }

    // MARK: Expiry and shutdown

    func expireRequests() {
        let now = tickCount
        for (index, waiters) in pendingWrites {
            let (expired, kept) = waiters.partitioned { $0.waiter.deadline <= now }
            for w in expired { w.waiter.resume(.failure(ReplicationError.timeout)) }
            pendingWrites[index] = kept.isEmpty ? nil : kept
        }
        for (id, entry) in forwarded.sorted(by: { $0.key < $1.key })
        where entry.waiter.deadline <= now || (entry.answerDeadline ?? Int.max) <= now {
            forwarded[id] = nil
            entry.waiter.resume(.failure(ReplicationError.timeout))
        }
        let (lateWrites, keptWrites) = waitingForLeader.partitioned { $0.waiter.deadline <= now }
        waitingForLeader = keptWrites
        for w in lateWrites { w.waiter.resume(.failure(ReplicationError.noLeader)) }
        for (context, entry) in pendingReads where entry.deadline <= now {
            pendingReads[context] = nil
            entry.0.continuation.resume(throwing: ReplicationError.timeout)
        }
        let (lateReads, keptReads) = readsWaitingForLeader.partitioned { $0.deadline <= now }
        readsWaitingForLeader = keptReads
        for r in lateReads { r.0.continuation.resume(throwing: ReplicationError.noLeader) }
        for (index, entry) in confChangesPending where entry.deadline <= now {
            confChangesPending[index] = nil
            entry.continuation.resume(throwing: ReplicationError.timeout)
        }
        let (lateTransfers, keptTransfers) = transfersPending.partitioned { $0.2 <= now }
        transfersPending = keptTransfers
        for t in lateTransfers { t.1.resume(throwing: ReplicationError.timeout) }
    }

    func failEverything(_ reason: ReplicationError) {
        for (_, waiters) in pendingWrites { for w in waiters { w.waiter.resume(.failure(reason)) } }
        pendingWrites = [:]
        for (_, entry) in forwarded.sorted(by: { $0.key < $1.key }) { entry.waiter.resume(.failure(reason)) }
        forwarded = [:]
        for entry in refusedForwards { entry.write.waiter.resume(.failure(reason)) }
        refusedForwards = []
        for w in waitingForLeader { w.waiter.resume(.failure(reason)) }
        waitingForLeader = []
        for (_, entry) in pendingReads { entry.0.continuation.resume(throwing: reason) }
        pendingReads = [:]
        for (request, _) in readyReads { request.continuation.resume(throwing: reason) }
        readyReads = []
        for (request, _) in readsWaitingForLeader { request.continuation.resume(throwing: reason) }
        readsWaitingForLeader = []
        for t in transfersPending { t.1.resume(throwing: reason) }
        transfersPending = []
        for (_, c) in confChangesPending { c.continuation.resume(throwing: reason) }
        confChangesPending = [:]
    }

    func reject(_ input: RuntimeInput, _ reason: ReplicationError) {
        switch input {
        case .execute(_, let resume): resume(.failure(reason))
        case .executeBatch(let commands, let resume): for k in commands.indices { resume(k, .failure(reason)) }
        case .read(let request, _): request.continuation.resume(throwing: reason)
        case .admin(.confChange(_, let c)), .admin(.transfer(_, let c)), .admin(.snapshot(let c)): c.resume(throwing: reason)
        case .messages, .tick, .stop, .stopGracefully, .snapshotTaken: break
        }
    }

    // MARK: Status

    func publishStatus(running: Bool) {
        var status = NodeStatus(nodeID: config.nodeID)
        status.role = core.role
        status.leader = core.leader
        status.term = core.term
        status.commitIndex = core.log.committed
        status.appliedIndex = machine.appliedIndex
        let last = (try? core.log.lastIndex()) ?? 0
        status.lastIndex = last
        let view = currentMemberView(last: last, running: running)
        status.isJoint = view.isJoint
        status.members = view.members
        status.cluster = view.cluster
        status.slowestRecentFsyncSeconds = view.slowestRecentFsync
        status.keys = machine.count
        status.dr = machine.drState
        status.activeActive = machine.activeActiveSettings
        status.activeActiveCursors = machine.activeActiveCursors
        if status.activeActive.enabled { status.activeActiveMetadata = machine.activeActiveMetadataSummary }
        status.activeActiveCatchUps = machine.activeActiveCatchUps
        status.activeActiveTopology = machine.activeActiveTopology
        status.activeActiveTopologyVersion = machine.activeActiveTopologyVersion
        status.failure = failure.map { "\($0)" }
        status.running = running
        status.diskFull = diskFullSince != nil
        status.fsyncSeconds = fsyncAverage
        status.replaying = machine.appliedIndex < replayTarget
        status.handingOver = handover != nil && core.isLeader
        publish(status)
    }

    /// The member view of the status: the last one while it is fresh (built within
    /// `memberViewTicks`, at the same role, term and leader), otherwise a new one.
    func currentMemberView(last: LogIndex, running: Bool) -> MemberView {
        if running, let view = memberView, view.role == core.role, view.term == core.term, view.leader == core.leader,
           tickCount - view.tick < Self.memberViewTicks {
            return view
        }
        let conf = core.confState
        let view = MemberView(tick: tickCount, role: core.role, term: core.term, leader: core.leader,
                              isJoint: conf.isJoint, members: memberStatuses(conf: conf, last: last),
                              cluster: clusterView?.cluster.stats(), slowestRecentFsync: recentFsyncs.max())
        memberView = view
        return view
    }

    // MARK: Error mapping

    func mapRaftError(_ error: any Error) -> ReplicationError {
        if let e = error as? ReplicationError { return e }
        guard let raft = error as? RaftError else { return .rejected("\(error)") }
        switch raft {
        case .notLeader(let leader): return leader == nil ? .noLeader : .notLeader(leader: leader)
        default: return .rejected(raft.description)
        }
    }

    func mapFailure(_ failure: ClientFailure) -> ReplicationError {
        switch failure.code {
        case .notLeader: return failure.leaderHint == nil ? .noLeader : .notLeader(leader: failure.leaderHint)
        case .timeout: return .timeout
        case .unavailable: return .shuttingDown
        default: return .rejected(failure.message)
        }
    }

    func clientFailure(_ error: ReplicationError) -> ClientFailure {
        switch error {
        case .notLeader(let leader): return ClientFailure(code: .notLeader, message: error.description, leaderHint: leader)
        case .noLeader: return ClientFailure(code: .notLeader, message: error.description)
        case .timeout: return ClientFailure(code: .timeout, message: error.description)
        case .shuttingDown, .storageFailed, .overloaded, .diverged:
            return ClientFailure(code: .unavailable, message: error.description)
        case .lost, .rejected: return ClientFailure(code: .rejected, message: error.description)
        }
    }

    func encodeTerm(_ term: Term) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: term >> (8 * $0)) } }

    func decodeTerm(_ bytes: [UInt8]) -> Term? {
        guard bytes.count == 8 else { return nil }
        var t: Term = 0
        for k in 0..<8 { t |= Term(bytes[k]) << (8 * k) }
        return t
    }
}

extension Array {
    /// Splits into the elements that satisfy `predicate` and those that do not.
    func partitioned(_ predicate: (Element) -> Bool) -> (matching: [Element], rest: [Element]) {
        var matching: [Element] = [], rest: [Element] = []
        for e in self { if predicate(e) { matching.append(e) } else { rest.append(e) } }
        return (matching, rest)
    }
}

/// A transport whose peer address book can change at runtime.
public protocol PeerDirectory: Sendable {
    /// Adds or updates a peer's address.
    func setPeer(_ peer: NodeID, address: PeerAddress)
    /// Forgets a peer.
    func removePeer(_ peer: NodeID)
}

extension TCPTransport: PeerDirectory {}

/// The part of a published `NodeStatus` that describes the members, with the tick,
/// role, term and leader it was built at (`NodeLoop.currentMemberView`).
struct MemberView {
    var tick: Int
    var role: RaftRole
    var term: Term
    var leader: NodeID?
    var isJoint: Bool
    var members: [MemberStatus]
    var cluster: ClusterStats?
    var slowestRecentFsync: Double?
}
