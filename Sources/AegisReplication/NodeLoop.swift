import Foundation
#if canImport(Glibc)
import Glibc
#endif
import AegisKV
import AegisRaft
import AegisStorage
import AegisTransport
import Logging

/// The single-threaded heart of a node: owns the Raft core, the state machine and the
/// bookkeeping of waiting clients. Runs on its own thread (it blocks on fsync), takes
/// inputs in batches and handles every `Ready` in the documented order.
final class NodeLoop: @unchecked Sendable {
    let config: NodeConfiguration
    var core: RaftCore
    var machine: StateMachine
    let storage: any RuntimeStorage
    let transport: any Transport
    let queue: InputQueue
    let logger: Logger
    let metrics: RuntimeMetrics
    let publish: @Sendable (NodeStatus) -> Void
    var peerAddresses: [NodeID: MemberAddress]
    /// Wall-clock time in milliseconds (entry timestamps); injected by the simulator.
    let clock: @Sendable () -> UInt64
    /// Executes each `Ready` in the documented order (a mutation only in tests).
    let executor: ReadyExecutor
    /// Told of every entry applied to the state machine (the simulator's checks).
    var applyObserver: ((LogEntry) -> Void)?
    /// Runs a snapshot's serialization and file write away from the loop: a background
    /// queue in production, a later event in the simulator.
    let snapshotRunner: SnapshotRunner
    /// Hands a finished snapshot back to the loop (as `RuntimeInput.snapshotTaken`).
    let snapshotDone: @Sendable (SnapshotOutcome) -> Void
    /// Called on the loop once a snapshot's log compaction is done: in production it
    /// asks the snapshot thread to hand the allocator's free pages back to the system
    /// (`releaseFreedMemoryInBackground`); nothing in the simulator.
    let compacted: @Sendable () -> Void
    /// The index of the snapshot being taken off the loop, if one is.
    var snapshotInFlight: LogIndex?
    /// Bytes of the entries applied since the last snapshot was started (or the node
    /// started), and the size of the last snapshot: see
    /// `NodeConfiguration.snapshotLogFraction`.
    var appliedBytesSinceSnapshot = 0
    var lastSnapshotBytes = 0

    var tickCount = 0
    var timeoutTicks: Int
    /// Writes proposed here by log index, with the term they were proposed in.
    var pendingWrites: [LogIndex: [(term: Term, waiter: WriteWaiter)]] = [:]
    /// Writes waiting for a leader to be known.
    var waitingForLeader: [(data: [UInt8], waiter: WriteWaiter)] = []
    /// Requests forwarded to the leader, by request id.
    var forwarded: [UInt64: ForwardedWrite] = [:]
    /// Forwarded writes a leader refused without appending them, waiting to be forwarded
    /// to the next leader (`NodeConfiguration.maxForwardAttempts`).
    var refusedForwards: [RefusedForward] = []
    /// This node's view of every member's health (`ClusterView`); `nil` only if the view
    /// could not be created.
    var clusterView: ClusterView?
    /// The loop's ticks as time, for the failure detector.
    let tickTime: TickTime
    /// Recent WAL fsync times in seconds: an exponentially weighted average and the last
    /// `recentFsyncCapacity`, a ring.
    var fsyncAverage: Double?
    var recentFsyncs: [Double] = []
    var recentFsyncNext = 0
    static let recentFsyncCapacity = 64
    /// The published status's member view (membership, each member's progress and
    /// health, the cluster's statistics) and what it was built at: rebuilt at most every
    /// `memberViewTicks`, and at once when the role, term, leader or membership changed
    /// (`nil` after a configuration entry or a snapshot is applied).
    var memberView: MemberView?
    /// The status is published after every pass (at least one a tick). Rebuilding the
    /// member view each time made `publishStatus` 17 % of an idle follower's `perf`
    /// samples (the member statuses, the configuration's sets and the cluster statistics
    /// 43 of its 62); rebuilt every 10 ticks, 1.7 %.
    static let memberViewTicks = 10
    /// The commit index this node knew when it started: it is replaying its log until it
    /// applied that far.
    let replayTarget: LogIndex
    /// Pre-faults arena memory while the replay runs (`prefaultsReplayMemory`);
    /// released when it is done.
    var replaySlabs: PrefaultingSlabSource.Lease?
    /// What `StateMachine.warm(for:)` returned, kept so its loads are not optimised away.
    var warmSink: UInt64 = 0
    /// A graceful stop in progress: the tick it must end by, and the tick this node
    /// stopped leading (`nil` while it still leads).
    var handover: (deadline: Int, steppedDownAt: Int?)?
    /// The tick at which this node last stopped leading (a graceful stop after a
    /// handover still lingers from then, see `beginHandover`).
    var lastSteppedDownAt: Int?
    /// Results of recently applied entries, so a write whose index was applied before
    /// its waiter registered still gets its answer. Entries replayed at start
    /// (`replayTarget`) are not recorded: nothing in this process proposed them.
    var recentResults = RecentResults()
    /// Identifies requests this node forwards; starts at a value drawn from the core's
    /// random seed, so a restarted node does not reuse the identifiers of its previous
    /// run (the leader deduplicates by identifier, see `answeredForwards`).
    var nextRequestID: UInt64 = 1
    /// Forwarded writes this node already answered, by (follower, request id): a
    /// request that arrives twice (a duplicated or re-sent message) is answered as it
    /// was the first time (the position, or the refusal) instead of being appended. Bounded by
    /// `maxRememberedForwards`, oldest first out.
    var answeredForwards: [ForwardKey: ClientResponse.Outcome] = [:]
    var answeredForwardOrder: [ForwardKey] = []
    var answeredForwardHead = 0
    static let maxRememberedForwards = 8_192
    /// Linearizable reads waiting for a read index, by context.
    var pendingReads: [UInt64: (ReadRequest, deadline: Int)] = [:]
    /// Reads whose read index is known, waiting for it to be applied.
    var readyReads: [(ReadRequest, index: LogIndex)] = []
    /// Reads waiting for a leader to be known.
    var readsWaitingForLeader: [(ReadRequest, deadline: Int)] = []
    var nextReadContext: UInt64 = 1
    var transfersPending: [(NodeID, Reply<Void>, deadline: Int)] = []
    /// Membership changes proposed here by log index: answered when the entry at the
    /// index is applied (success only if it is from `term`), or at the deadline.
    var confChangesPending: [LogIndex: (term: Term, continuation: Reply<Void>, deadline: Int)] = [:]
    /// `true` while this node, created empty to join, has not yet applied the change
    /// that adds it: it neither votes nor campaigns (see `NodeConfiguration.awaitingAdd`).
    var awaitingAdd: Bool
    /// Peer messages the core refused as invalid, and when the last warning was logged.
    var invalidMessages = 0
    /// The tick at which a write first failed for lack of disk space, while it lasts.
    var diskFullSince: Int?
    var lastDiskFullWarningTick: Int?
    var lastInvalidWarningTick: Int?
    var failure: ReplicationError?
    private let stoppedReasonBox = NSLockShim()
    private var stoppedReasonValue: ReplicationError?
    /// Why the loop stopped (a storage failure, a divergence), once it has; read from
    /// any thread to answer requests that arrive after the stop.
    var stoppedReason: ReplicationError? { stoppedReasonBox.with { stoppedReasonValue } }
    var lastLeader: NodeID?
    var lastCampaigns = 0
    /// The current pass's breakdown, and when the last slow pass was logged.
    var timings = LoopTimings()
    var lastSlowLoopWarning: UInt64?
    let slowLoopNanos: UInt64?
    /// The index of the last `purgeExpired` this node proposed as leader, until applied.
    var purgeInFlight: LogIndex?

    init(config: NodeConfiguration, core: RaftCore, machine: StateMachine, storage: any RuntimeStorage,
         transport: any Transport, queue: InputQueue, logger: Logger, peerAddresses: [NodeID: MemberAddress],
         clock: @escaping @Sendable () -> UInt64 = NodeLoop.systemClockMillis,
         executor: ReadyExecutor = ReadyExecutor(),
         snapshotRunner: @escaping SnapshotRunner = NodeLoop.backgroundSnapshots,
         snapshotDone: @escaping @Sendable (SnapshotOutcome) -> Void,
         compacted: @escaping @Sendable () -> Void = NodeLoop.releaseFreedMemoryInBackground,
         publish: @escaping @Sendable (NodeStatus) -> Void) {
        self.config = config
        self.snapshotRunner = snapshotRunner
        self.snapshotDone = snapshotDone
        self.compacted = compacted
        self.clock = clock
        self.executor = executor
        self.core = core
        self.machine = machine
        self.storage = storage
        self.transport = transport
        self.queue = queue
        self.logger = logger
        self.publish = publish
        self.peerAddresses = peerAddresses
        metrics = RuntimeMetrics(node: config.nodeID.rawValue)
        nextRequestID = (core.config.randomSeed &* 0x9E37_79B9_7F4A_7C15) | 1
        timeoutTicks = config.timeoutTicks
        slowLoopNanos = config.slowLoopWarning.map { d in
            let c = d.components
            return UInt64(max(0, c.seconds)) &* 1_000_000_000 &+ UInt64(max(0, c.attoseconds / 1_000_000_000))
        }
        awaitingAdd = config.awaitingAdd
        replayTarget = core.log.committed
        if config.prefaultsReplayMemory && replayTarget > self.machine.appliedIndex
            && replayTarget - self.machine.appliedIndex >= 10_000 {
            let lease = PrefaultingSlabSource.Lease(budget: Int.max)
            self.machine.takeArenaSlabs(from: lease.source)
            replaySlabs = lease
        }
        tickTime = TickTime(tickInterval: config.tickInterval)
        clusterView = try? ClusterView(localID: config.nodeID,
                                       heartbeat: config.tickInterval * max(1, config.raft.heartbeatInterval),
                                       failureTimeout: config.tickInterval * max(2, config.raft.electionTimeout),
                                       clock: tickTime)
    }

    // MARK: The loop

    /// Runs until `stop` is queued or storage fails.
    func run() {
        publishStatus(running: true)
        while true {
            let (batch, waited) = queue.takeAll()
            timings.begin()
            timings.inputs = batch.count
            timings.queuedNanos = waited
            var stopping = false
            for input in batch {
                if case .stop = input {
                    stopping = true
                    continue
                }
                handle(input)
            }
            timings.handleNanos = LoopTimings.since(timings.started)
            if failure == nil { processReadies() }
            reportSlowPass()
            if stopping || failure != nil || handoverFinished { break }
            publishStatus(running: true)
        }
        let reason = failure ?? .shuttingDown
        stoppedReasonBox.with { stoppedReasonValue = failure }
        for input in queue.close() { reject(input, reason) }
        failEverything(reason)
        replaySlabs = nil  // a replay cut short: stop its thread
        publishStatus(running: false)
    }

    func handle(_ input: RuntimeInput) {
        switch input {
        case .messages(let messages):
            for m in messages { receive(m) }
        case .tick:
            tick()
        case .execute(let data, let resume):
            metrics.proposals.increment()
            submit(data, waiter: WriteWaiter(resume: resume, deadline: tickCount + timeoutTicks))
        case .executeBatch(let commands, let resume):
            metrics.proposals.increment(by: commands.count)
            for (k, data) in commands.enumerated() {
                submit(data, waiter: WriteWaiter(resume: { resume(k, $0) }, deadline: tickCount + timeoutTicks))
            }
        case .read(let request, let stale):
            if stale {
                serve(request)
            } else {
                startRead(request, deadline: tickCount + timeoutTicks)
            }
        case .admin(let request):
            handleAdmin(request)
        case .snapshotTaken(let outcome):
            snapshotFinished(outcome)
        case .stopGracefully:
            beginHandover()
        case .stop:
            break
        }
    }

    func tick() {
        tickCount += 1
        tickTime.ticks = tickCount
        flushUnsyncedLog()
        core.tick()
        if handover != nil { continueHandover() }
        if tickCount % 10 == 0 { expireRequests() }
        if tickCount % max(1, config.expiryIntervalTicks) == 0 { proposeExpiredKeys() }
        if !waitingForLeader.isEmpty || !readsWaitingForLeader.isEmpty { retryWaitingForLeader() }
        if !refusedForwards.isEmpty { retryRefusedForwards() }
        if tickCount % max(1, config.raft.heartbeatInterval) == 0 { reportToPeers() }
        if tickCount % 100 == 0 {
            metrics.updateTransport(transport.stats)
            if machine.activeActiveSettings.enabled { metrics.updateActiveActive(machine.activeActiveMetadataSummary) }
        }
    }

    /// Writes what earlier passes saved without `sync` if it is still only in memory
    /// (a log without a writer thread, `DiskStorageOptions.nodeLog`): the commit index
    /// reaches the files within a tick. A full disk is left to the next tick and to the
    /// write path, which refuses writes meanwhile; any other failure stops the node.
    func flushUnsyncedLog() {
        do {
            try storage.flushUnsynced()
        } catch StorageError.noSpace {
            return
        } catch {
            stopOnStorageFailure(error)
        }
    }

    // MARK: Messages

    func receive(_ message: Message) {
        switch message.payload {
        case .raft(let payload):
            guard let raft = message.raftMessage else { return }
            if awaitingAdd, case .vote = payload { return }  // not a voter until added
            do { try core.step(raft) } catch RaftError.diverged(let divergence) {
                stopOnDivergence(divergence)
            } catch {
                droppedInvalid(message, error)
            }
        case .clientRequest(let request):
            proposeForFollower(request, from: message.from)
        case .clientResponse(let response):
            guard let write = forwarded.removeValue(forKey: response.requestID) else { return }
            switch response.outcome {
            case .success(let index, let value):
                // The leader appended it at `index` in the term carried in `value`; the
                // result comes from this node's own apply of that index.
                // An undecodable term (never sent by this code) leaves the outcome
                // unknown: treating it as another entry would tell the client that a
                // write that may be committed was not applied.
                guard let term = decodeTerm(value) else {
                    write.waiter.resume(.failure(ReplicationError.timeout))
                    return
                }
                awaitIndex(index, term: term, waiter: write.waiter)
            case .failure(let f):
                // "Dropped during a transfer" and "not the leader" both mean it was not
                // appended (and the node remembers its answer, so a duplicate of the
                // request is never appended later): forwarding it again to another
                // leader cannot apply it twice. It is forwarded again when the refusal
                // points elsewhere: a transfer, a leader named, or a leader change since
                // it was sent (a node restarted meanwhile answers without a hint). A
                // plain refusal from the node this one believes leads is final.
                let pointsElsewhere = f.leaderHint.map { $0 != message.from } == true || write.answerDeadline != nil
                let movesOn = f.code == .proposalDropped || (f.code == .notLeader && pointsElsewhere)
                if movesOn, write.attempts < config.maxForwardAttempts, write.waiter.deadline > tickCount {
                    refusedForwards.append(RefusedForward(write: write, refusedBy: message.from, at: tickCount,
                                                          refusal: mapFailure(f), leaderIsLeaving: f.code == .proposalDropped))
                    retryRefusedForwards()
                } else {
                    write.waiter.resume(.failure(mapFailure(f)))
                }
            }
        case .peerStatus(let report):
            clusterView?.received(report, from: message.from, leader: core.leader)
        }
    }

    /// Counts a peer message the core refused and logs it, at most once per election
    /// timeout (a hostile or broken peer must not flood the log).
    func droppedInvalid(_ message: Message, _ error: any Error) {
        invalidMessages += 1
        metrics.invalidMessages.increment()
        if let last = lastInvalidWarningTick, tickCount - last < config.raft.electionTimeout { return }
        lastInvalidWarningTick = tickCount
        logger.warning("dropped an invalid message from a peer", metadata: [
            "from": "\(message.from)", "type": "\(message.type)", "error": "\(error)",
            "droppedSoFar": "\(invalidMessages)"])
    }

    /// This node's committed log conflicts with the leader's: it must not serve a state
    /// the cluster does not have. The loop stops; every request is answered with the reason.
    func stopOnDivergence(_ divergence: Divergence) {
        guard failure == nil else { return }
        logger.critical("this node stops serving: its applied state conflicts with the leader's log",
                        metadata: ["divergence": "\(divergence)"])
        failure = .diverged("\(divergence)")
    }

    /// While this node cannot write its log for lack of space, new writes are refused at
    /// once rather than queued behind a log that cannot grow.
    var diskFullRefusal: ReplicationError? {
        diskFullSince == nil ? nil : .rejected("the disk of \(config.nodeID) is full; writes resume when space is freed")
    }

    /// Why a proposal of `size` bytes is refused, or `nil`.
    func oversize(_ size: Int) -> ReplicationError? {
        guard size > config.maxEntryBytes else { return nil }
        return .rejected("the command is \(size) bytes, over the maximum entry size of \(config.maxEntryBytes) bytes")
    }

    /// The leader side of forwarding: append, and tell the follower where. A request
    /// seen before gets the answer it got then.
    func proposeForFollower(_ request: ClientRequest, from: NodeID) {
        let key = ForwardKey(from: from, requestID: request.requestID)
        if let answered = answeredForwards[key] {
            transport.send(.clientResponse(ClientResponse(requestID: request.requestID, outcome: answered)), to: from)
            return
        }
        let outcome: ClientResponse.Outcome
        if let refusal = oversize(request.command.count) ?? diskFullRefusal {
            outcome = .failure(clientFailure(refusal))
        } else if leaderIsLeaving {
            // Not appended: the follower forwards it again to the next leader.
            let reason = core.leadTransferee.map { "leadership is being transferred to \($0)" }
                ?? "this leader is handing leadership over to stop"
            outcome = .failure(ClientFailure(code: .proposalDropped, message: reason, leaderHint: core.leadTransferee))
        } else if core.isLeader, let refusal = guardRefusal(request.command) {
            outcome = .failure(clientFailure(refusal))
        } else if core.isLeader {
            do {
                if case .appended(let index, let term) = try core.propose(request.command, timestamp: wallClockMillis()) {
                    outcome = .success(index: index, value: encodeTerm(term))
                } else {
                    outcome = .failure(ClientFailure(code: .notLeader, message: "not the leader", leaderHint: core.leader))
                }
            } catch RaftError.proposalDropped(let reason) {
                // Not appended (a transfer in progress): the follower forwards it again.
                outcome = .failure(ClientFailure(code: .proposalDropped, message: reason, leaderHint: core.leadTransferee))
            } catch {
                outcome = .failure(clientFailure(mapRaftError(error)))
            }
        } else if handover != nil {
            // Stepped down to stop: the leader may not be known here yet, but one is coming.
            outcome = .failure(ClientFailure(code: .proposalDropped, message: "this node handed leadership over and is stopping",
                                             leaderHint: core.leader))
        } else {
            outcome = .failure(ClientFailure(code: .notLeader, message: "not the leader", leaderHint: core.leader))
        }
        // Every answer is remembered, refusals too: a duplicate of a refused request that
        // arrives once this node leads (a transfer abandoned, an election won) must get
        // the same refusal, not be appended — the follower may already have answered
        // its client with that refusal.
        rememberForward(key, outcome)
        transport.send(.clientResponse(ClientResponse(requestID: request.requestID, outcome: outcome)), to: from)
    }

    func rememberForward(_ key: ForwardKey, _ outcome: ClientResponse.Outcome) {
        answeredForwards[key] = outcome
        answeredForwardOrder.append(key)
        if answeredForwardOrder.count - answeredForwardHead > Self.maxRememberedForwards {
            answeredForwards[answeredForwardOrder[answeredForwardHead]] = nil
            answeredForwardHead += 1
            if answeredForwardHead >= Self.maxRememberedForwards {
                answeredForwardOrder.removeFirst(answeredForwardHead)
                answeredForwardHead = 0
            }
        }
    }

    // MARK: Writes

    /// Proposes on the leader, forwards from a follower, or waits for a leader.
    func submit(_ data: [UInt8], waiter: WriteWaiter) {
        if let refusal = oversize(data.count) ?? diskFullRefusal {
            waiter.resume(.failure(refusal))
            return
        }
        if core.isLeader {
            // While leadership is handed over: wait for the new leader and forward to it.
            if leaderIsLeaving {
                waitingForLeader.append((data, waiter))
                return
            }
            if let refusal = guardRefusal(data) {
                waiter.resume(.failure(refusal))
                return
            }
            do {
                if case .appended(let index, let term) = try core.propose(data, timestamp: wallClockMillis()) {
                    awaitIndex(index, term: term, waiter: waiter)
                }
            } catch {
                waiter.resume(.failure(mapRaftError(error)))
            }
            return
        }
        guard let leader = core.leader else {
            waitingForLeader.append((data, waiter))
            return
        }
        forward(ForwardedWrite(waiter: waiter, data: data, leader: leader, attempts: 0), to: leader)
    }

    /// Sends a write to the leader (one more attempt).
    func forward(_ write: ForwardedWrite, to leader: NodeID) {
        var write = write
        write.leader = leader
        write.attempts += 1
        write.answerDeadline = nil
        let id = nextRequestID
        nextRequestID += 1
        forwarded[id] = write
        transport.send(.clientRequest(ClientRequest(requestID: id, kind: .write, command: write.data)), to: leader)
    }

    /// Forwards again the writes a leader refused, once this node knows a leader other
    /// than the one that refused; proposes them itself if it leads. If the refusing node
    /// still leads after an election timeout (its transfer was abandoned), or the
    /// request's deadline passes, the refusal is the answer.
    func retryRefusedForwards() {
        let leader = core.leader
        let waiting = refusedForwards
        refusedForwards = []
        for refused in waiting {
            let stale = tickCount >= refused.at + max(1, config.raft.electionTimeout)
            if refused.write.waiter.deadline <= tickCount || (stale && leader == refused.refusedBy && !refused.leaderIsLeaving) {
                // Every send was refused, none appended: a definite failure.
                refused.write.waiter.resume(.failure(refused.refusal))
            } else if core.isLeader {
                submit(refused.write.data, waiter: refused.write.waiter)
            } else if let leader, leader != refused.refusedBy {
                forward(refused.write, to: leader)
            } else {
                refusedForwards.append(refused)
            }
        }
    }

    /// Waits for this node to apply `index`: the write succeeded if the entry there is
    /// from `term`, and was lost otherwise.
    func awaitIndex(_ index: LogIndex, term: Term, waiter: WriteWaiter) {
        if index <= machine.appliedIndex {
            if let recent = recentResults[index] {
                if recent.term == term {
                    waiter.resume(.success(recent.result))
                } else {
                    waiter.resume(.failure(ReplicationError.lost))
                }
            } else {
                waiter.resume(.failure(ReplicationError.timeout))
            }
            return
        }
        pendingWrites[index, default: []].append((term, waiter))
    }

    func retryWaitingForLeader() {
        guard core.leader != nil else { return }
        let writes = waitingForLeader
        waitingForLeader = []
        for (data, waiter) in writes { submit(data, waiter: waiter) }
        let reads = readsWaitingForLeader
        readsWaitingForLeader = []
        for (request, deadline) in reads { startRead(request, deadline: deadline) }
    }

    // MARK: Reads

    func startRead(_ request: ReadRequest, deadline: Int) {
        let context = nextReadContext
        nextReadContext += 1
        do {
            try core.readIndex(context: context)
            pendingReads[context] = (request, deadline)
        } catch {
            readsWaitingForLeader.append((request, deadline))
        }
    }

    func serve(_ request: ReadRequest) {
        switch request.kind {
        case .values:
            let now = readClock()
            request.continuation.resume(returning: .values(request.keys.map { machine.get($0, now: now) }))
        case .count:
            request.continuation.resume(returning: .count(machine.count))
        case .digest:
            request.continuation.resume(returning: .digest(appliedIndex: machine.appliedIndex, hex: machine.digestHex()))
        case .log(let after, let maxCount, let maxBytes):
            request.continuation.resume(returning: .log(committedEntries(after: after, maxCount: maxCount, maxBytes: maxBytes)))
        case .activeActivePage(let after, let maxStates, let maxBytes, let source, let sourceTime):
            let commit = core.log.committed
            let page = machine.activeActiveCatchUpPage(source: source, after: after, maxStates: maxStates, maxBytes: maxBytes,
                                                       sourceCommit: commit, sourceTime: sourceTime)
            request.continuation.resume(returning: .activeActivePage(
                ActiveActiveCatchUpRead(page: page, firstIndex: (try? core.log.firstIndex()) ?? 0, commitIndex: commit)))
        case .activeActiveConflicts(let key, let limit):
            request.continuation.resume(returning: .activeActiveConflicts(machine.activeActiveConflictReport(key: key, limit: limit)))
        case .activeActive(let after, let maxCount, let maxBytes, let source, let sourceTime, let peer):
            let read = committedEntries(after: after, maxCount: maxCount, maxBytes: maxBytes)
            let batch = machine.activeActiveBatch(source: source, after: after, entries: read.entries,
                                                  sourceCommit: read.commitIndex, sourceTime: sourceTime, peer: peer)
            request.continuation.resume(returning: .activeActive(
                ActiveActiveRead(batch: batch, firstIndex: read.firstIndex, commitIndex: read.commitIndex)))
        }
    }

    func serveReadyReads() {
        guard !readyReads.isEmpty else { return }
        let applied = machine.appliedIndex
        var waiting: [(ReadRequest, index: LogIndex)] = []
        for (request, index) in readyReads {
            if index <= applied { serve(request) } else { waiting.append((request, index)) }
        }
        readyReads = waiting
    }

    func wallClockMillis() -> UInt64 { clock() }

    /// The time reads compare deadlines with: this node's wall clock, but never before
    /// the highest leader timestamp applied (`StateMachine.expiryClock`), so it does
    /// not run backwards across leader changes or when this clock is behind. A key is
    /// absent to reads once its deadline is at or before this time; see "Expiring keys"
    /// in the AegisReplication documentation for the clock assumption.
    func readClock() -> UInt64 { max(wallClockMillis(), machine.expiryClock) }

    /// As leader, proposes the removal of up to `expiryBatchSize` keys whose deadline
    /// passed by this node's clock: one entry at a time, each applied before the next.
    func proposeExpiredKeys() {
        guard core.isLeader, !leaderIsLeaving, machine.expiringKeyCount > 0 else { return }
        if let pending = purgeInFlight, pending > machine.appliedIndex { return }
        purgeInFlight = nil
        let now = wallClockMillis()
        let keys = machine.dueForExpiry(at: now, limit: max(1, config.expiryBatchSize))
        guard !keys.isEmpty else { return }
        let data = Command.purgeExpired(keys).encoded()
        guard oversize(data.count) == nil else { return }
        do {
            if case .appended(let index, _) = try core.propose(data, timestamp: now) { purgeInFlight = index }
        } catch {
            logger.debug("expiry purge not proposed", metadata: ["error": "\(error)"])
        }
    }

    /// The system's wall clock in milliseconds since 1970.
    @Sendable static func systemClockMillis() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }

    /// Opens the pieces of a node over `storage`: bootstraps a new cluster when the
    /// storage is empty and the configuration names founding voters, restores the state
    /// machine from the stored snapshot and creates the core. Shared by `NodeRuntime`
    /// and `ReplicaNode`.
    static func open(configuration: NodeConfiguration, storage: any RuntimeStorage, randomSeed: UInt64,
                     logger: Logger) throws -> (core: RaftCore, machine: StateMachine, snapshotBytes: Int) {
        if try storage.lastIndex() == 0 && !configuration.bootstrapVoters.isEmpty {
            try RaftCore.bootstrap(storage, voters: configuration.bootstrapVoters)
            logger.info("bootstrapped a new cluster", metadata: ["voters": "\(configuration.bootstrapVoters.map(\.rawValue))"])
        }
        var machine = StateMachine(limits: configuration.limits, replica: configuration.replica)
        var snapshotBytes = 0
        let started = DispatchTime.now().uptimeNanoseconds
        let metadata = try storage.snapshotMetadata()
        // Parsed while the storage opened (`NodeConfiguration.snapshotPreparer`), if it was
        // the snapshot the log names, under the same limits and replica ID; otherwise read
        // and parsed now.
        if metadata.index > 0, let prepared = storage.takePreparedSnapshot() as? PreparedStateMachine,
           prepared.machine.appliedIndex == metadata.index, prepared.machine.limits == configuration.limits,
           prepared.machine.replica == configuration.replica {
            machine = prepared.machine
            snapshotBytes = prepared.dataBytes
            logger.info("restored the state machine from the stored snapshot (parsed as the storage read it)", metadata: [
                "index": "\(metadata.index)", "bytes": "\(snapshotBytes)", "keys": "\(machine.count)"])
        } else {
            let snapshot = try storage.snapshot()
            if !snapshot.isEmpty {
                let read = DispatchTime.now().uptimeNanoseconds
                try machine.restore(from: snapshot)
                snapshotBytes = snapshot.data.count
                let done = DispatchTime.now().uptimeNanoseconds
                logger.info("restored the state machine from the stored snapshot", metadata: [
                    "index": "\(snapshot.metadata.index)", "bytes": "\(snapshotBytes)", "keys": "\(machine.count)",
                    "read_seconds": "\(Double(read - started) / 1e9)", "restore_seconds": "\(Double(done - read) / 1e9)"])
            }
        }
        var raft = configuration.raft
        raft.applied = machine.appliedIndex
        raft.randomSeed = randomSeed
        let receiver: any SnapshotReceiver = try configuration.snapshotReceiveDirectory.map {
            try FileSnapshotReceiver(directory: $0)
        } ?? MemorySnapshotReceiver()
        let core = try RaftCore(id: configuration.nodeID, config: raft, storage: storage, snapshotReceiver: receiver)
        return (core, machine, snapshotBytes)
    }
}

/// Runs snapshot work somewhere other than the node loop.
typealias SnapshotRunner = @Sendable (@escaping @Sendable () -> Void) -> Void

extension NodeLoop {
    /// One background thread for every node's snapshots of this process: they are rare
    /// and each is a single serialize-and-write.
    static let snapshotWorker = BackgroundWorker(name: "aegis-snapshot", niceIncrement: 5)

    /// The production runner: the snapshot thread, at a lower CPU priority than the node
    /// loops (so that serializing a large state on a busy machine does not starve the
    /// loop's heartbeats and appends).
    @Sendable static func backgroundSnapshots(_ work: @escaping @Sendable () -> Void) {
        snapshotWorker.run(work)
    }

    /// After a compaction: the snapshot thread hands the allocator's free pages back to
    /// the system. The log entries the compaction dropped and the snapshot's transient
    /// copies are scattered through the heap, and glibc returns only the top of each
    /// arena by itself. Queued behind the snapshot job, so the job's copy-on-write view
    /// of the state is released by then. (It used to run at the end of the snapshot job,
    /// before the compaction: the entries a compaction freed stayed resident until the
    /// next snapshot, all of them once writes stopped.)
    @Sendable static func releaseFreedMemoryInBackground() {
        snapshotWorker.run { releaseFreedMemory() }
    }

    /// Returns free heap pages to the system: glibc's `malloc_trim`, looked up at run
    /// time (it is not in the Swift Glibc module); nothing where the C library has none.
    static func releaseFreedMemory() {
        mallocTrim?(0)
    }

    private typealias MallocTrim = @convention(c) (Int) -> Int32
    nonisolated(unsafe) private static let mallocTrim: MallocTrim? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: MallocTrim.self)
        #else
        return nil
        #endif
    }()
}

/// A client write this follower forwarded to the leader, until the leader answers.
struct ForwardedWrite {
    var waiter: WriteWaiter
    /// The encoded command, kept to forward it again if the leader refuses it.
    var data: [UInt8]
    /// The leader it was sent to.
    var leader: NodeID
    /// How many times it was sent (see `NodeConfiguration.maxForwardAttempts`).
    var attempts: Int
    /// Set once the leader changed: the old leader's answer (it may have appended the
    /// write) is awaited until this tick, then the outcome is unknown (`timeout`).
    var answerDeadline: Int?
}

/// A forwarded write a leader refused without appending it, waiting to be sent again.
struct RefusedForward {
    var write: ForwardedWrite
    /// The node that refused it, and the tick it did.
    var refusedBy: NodeID
    var at: Int
    /// The refusal, answered if the write cannot be sent again in time (nothing of it
    /// was appended, so this failure is definite).
    var refusal: ReplicationError
    /// The refusing leader is handing leadership over (a transfer, or a graceful stop):
    /// another leader is coming, so the write waits for it until its own deadline
    /// rather than failing after an election timeout.
    var leaderIsLeaving: Bool
}

/// A forwarded request: the follower that sent it and its identifier there.
struct ForwardKey: Hashable {
    var from: NodeID
    var requestID: UInt64
}
