public import AegisRaft

/// Options of one simulated run.
public struct SimulationOptions: Sendable {
    /// The seed: same seed, same run.
    public var seed: UInt64
    /// Number of nodes; nil draws 3 or 5 from the seed.
    public var nodeCount: Int?
    /// Length of the faulty phase, in ticks.
    public var ticks: Int = 1_500
    /// The Raft configuration of every node (timeouts in ticks).
    public var raft: RaftConfig = {
        var c = RaftConfig(electionTimeout: 10, heartbeatInterval: 2)
        c.maxSizePerMessage = 4 << 10
        c.maxInflightMessages = 16
        c.maxInflightBytes = 64 << 10
        c.maxUncommittedBytes = 64 << 10
        c.snapshotThreshold = 0
        return c
    }()
    /// How many recent events a failure report shows.
    public var traceTail = 40
    /// Membership changes, leadership transfers, snapshots and register clients
    /// (reads and compare-and-sets checked for linearizability), at the rates the
    /// seed draws. Off: plain replication of writes only.
    public var fullWorkload = true
    /// An ordering bug to inject into every node's `Ready` handling (mutation tests).
    public var mutation: ReadyMutation = .none
    /// How far, in percent, a node's tick period may differ from the true one
    /// (`TickDrift`).
    public var tickDriftPercent = 10
    /// Lease reads, safe reads, or one per seed (`SimulatedReadMode`).
    public var readMode: SimulatedReadMode = .mixed
    /// The drift bound the nodes' lease assumes (`RaftConfig.maxClockDriftPercent`):
    /// below `tickDriftPercent` the lease is unsound, which the checks must catch.
    public var leaseDriftBoundPercent = 10

    /// Creates options for a seed.
    public init(seed: UInt64) { self.seed = seed }
}

/// The outcome of one simulated run.
public struct SimulationResult: Sendable {
    public var seed: UInt64
    public var nodeCount: Int
    public var profile: FaultProfile
    /// Events processed (every one followed by the invariant checks).
    public var steps = 0
    /// Distinct log indexes committed.
    public var commits = 0
    /// Leaders elected (distinct terms with a leader).
    public var elections = 0
    public var crashes = 0
    public var partitions = 0
    /// Safety violations found.
    public var violations: [Violation] = []
    /// Set when the cluster failed to elect a leader and commit after healing.
    public var livenessFailure: String?
    /// Errors the core returned where none should occur.
    public var unexpectedErrors: [String] = []
    /// A hash of every event in order: equal for equal seeds.
    public var traceHash: UInt64 = 0
    /// The last events, for failure reports.
    public var traceTail: [String] = []
    /// Virtual time at the end, in ticks.
    public var endTick: UInt64 = 0
    /// The nodes' states when the run stopped on a violation.
    public var finalState: String?
    /// Configuration changes applied (counted on the leader that proposed them).
    public var confChanges = 0
    /// Snapshots installed on followers from a leader.
    public var snapshotsInstalled = 0
    /// Snapshots taken by nodes (log compactions).
    public var snapshotsTaken = 0
    /// Leadership transfers started, and those that ended with the target leading.
    public var transfers = 0
    public var transfersCompleted = 0
    /// Register operations recorded, and the reads among them that returned a value.
    public var operations = 0
    public var readsChecked = 0
    /// Keys whose history is not linearizable (or could not be decided).
    public var linearizabilityViolations: [String] = []

    /// `true` if nothing went wrong.
    public var passed: Bool {
        violations.isEmpty && livenessFailure == nil && unexpectedErrors.isEmpty && linearizabilityViolations.isEmpty
    }
}

/// A whole Raft cluster in one thread with virtual time, driven by one seed:
/// message loss, duplication and reordering, partitions (symmetric and asymmetric),
/// crash-restarts that lose unpersisted writes and tear the one in progress, and
/// client proposals. After every event the `InvariantChecker` is fed what changed;
/// at the end all faults heal and a leader must be elected and a new proposal
/// committed within 10 election timeouts.
public final class Simulator {
    /// Time units per tick.
    public static let tickUnits: UInt64 = 10

    enum Event {
        case tick(node: Int, incarnation: Int)
        case deliver(RaftMessage)
        case diskDone(node: Int, incarnation: Int)
        case crash
        case restart(node: Int)
        case partition
        case healPartition(id: Int)
        case propose
        case heal
        case livenessProbe
        case membership
        case transfer
        case client
        case retire(node: Int)
        case clientTimeouts
    }

    enum Input {
        case tick
        case message(RaftMessage)
        case propose([UInt8])
        case clientWrite(OperationID, [UInt8])
        case clientRead(OperationID)
        case confChange(ConfChange)
        case transfer(NodeID)
    }

    final class Node {
        let id: NodeID
        let storage: MemoryStorage
        var core: RaftCore?
        var incarnation = 0
        var pending: Ready?
        var inbox: [Input] = []
        var machine = RegisterMachine()
        /// Removed from the cluster: never restarted.
        var retired = false
        /// Client reads waiting for a read state, by context (= operation id).
        var pendingReads: [UInt64: (key: UInt64, invoked: UInt64)] = [:]
        /// Reads with a read index, waiting for it to be applied.
        var readyReads: [(op: OperationID, key: UInt64, index: LogIndex)] = []
        init(id: NodeID, storage: MemoryStorage) {
            self.id = id
            self.storage = storage
        }
    }

    let options: SimulationOptions
    var rng: SplitMix64
    var queue = EventQueue<Event>()
    var now: UInt64 = 0
    var nodes: [Node] = []
    /// Every node ever created, in creation order (`nodes[k].id == ids[k]`).
    var ids: [NodeID]
    var history = History()
    /// Client writes waiting for their index to be applied: (operation, term).
    var pendingWrites: [LogIndex: [(op: OperationID, term: Term)]] = [:]
    /// The latest transfer: its target and the term it started in.
    var pendingTransfer: (target: NodeID, term: Term)?
    var nextClient: UInt64 = 1
    var checker = InvariantChecker()
    var result: SimulationResult
    var profile: FaultProfile
    /// Blocked directed links, as `from * 16 + to`.
    var blocked: Set<Int> = []
    var partitionID = 0
    var healed = false
    var healTime: UInt64 = 0
    var livenessMarkers: Set<UInt64> = []
    var livenessDone = false
    var nextOperation: UInt64 = 1
    var leadersSeen: Set<Term> = []
    var trace = TraceRecorder(capacity: 40)
    /// The shared `Ready` ordering, with the options' mutation.
    let executor: ReadyExecutor
    /// Each node's tick period.
    var drift: TickDrift

    /// Prepares a run.
    public init(options: SimulationOptions) {
        self.options = options
        executor = ReadyExecutor(mutation: options.mutation)
        var generator = SplitMix64(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ 1)
        profile = FaultProfile.draw(&generator)
        let n = options.nodeCount ?? (generator.next() % 2 == 0 ? 3 : 5)
        rng = generator
        var names: [NodeID] = []
        for k in 1...n { names.append(NodeID("n\(k)")) }
        ids = names
        drift = TickDrift(nodes: n, tickUnits: Self.tickUnits, maxDriftPercent: options.tickDriftPercent, seed: options.seed)
        result = SimulationResult(seed: options.seed, nodeCount: n, profile: profile)
        trace = TraceRecorder(capacity: options.traceTail)
    }

    // MARK: Running

    /// Runs the simulation to the end and returns its result.
    public func run() -> SimulationResult {
        for (k, id) in ids.enumerated() {
            let storage = MemoryStorage()
            do { try RaftCore.bootstrap(storage, voters: ids) } catch {
                result.unexpectedErrors.append("bootstrap: \(error)")
            }
            nodes.append(Node(id: id, storage: storage))
            start(k)
        }
        let mainEnd = UInt64(options.ticks) * Self.tickUnits
        queue.push(.heal, at: mainEnd)
        if profile.partitionInterval > 0 { queue.push(.partition, at: draw(profile.partitionInterval * 2)) }
        if profile.crashInterval > 0 { queue.push(.crash, at: draw(profile.crashInterval * 2)) }
        queue.push(.propose, at: draw(profile.proposalInterval * 2))
        if options.fullWorkload {
            if profile.membershipInterval > 0 { queue.push(.membership, at: draw(profile.membershipInterval * 2)) }
            if profile.transferInterval > 0 { queue.push(.transfer, at: draw(profile.transferInterval * 2)) }
            queue.push(.client, at: draw(profile.clientInterval * 2))
            queue.push(.clientTimeouts, at: now + 20 * Self.tickUnits)
        }
        let deadline = mainEnd + UInt64(10 * options.raft.electionTimeout) * Self.tickUnits
        while !livenessDone, let (time, event) = queue.pop() {
            if time > deadline { break }
            now = time
            result.steps += 1
            handle(event)
            if !checker.violations.isEmpty { break }
        }
        if !checker.violations.isEmpty || !livenessDone {
            let states = nodes.map { node -> String in
                guard let c = node.core else { return "\(node.id): down" }
                let last = (try? c.log.lastIndex()) ?? 0
                var text = "\(node.id)\(node.retired ? " (retired)" : ""): \(c.role) voters \(c.confState.voters.sorted()) out \(c.confState.outgoingVoters.sorted()) learners \(c.confState.learners.sorted()) term \(c.term) commit \(c.log.committed) applied \(c.appliedIndex) last \(last) busy \(node.pending != nil) inbox \(node.inbox.count)"
                if c.role == .leader {
                    for id in ids where id != node.id {
                        if let p = c.progress(of: id) { text += " [\(id) \(p.state) match \(p.match) next \(p.next)]" }
                    }
                }
                return text
            }
            let detail = states.joined(separator: "; ")
            if checker.violations.isEmpty {
                result.livenessFailure = "no leader committed a new proposal within 10 election timeouts after healing; " + detail
            } else {
                result.finalState = detail
            }
        }
        if options.fullWorkload { checkHistory() }
        result.violations = checker.violations
        result.commits = checker.committedCount
        result.elections = leadersSeen.count
        result.traceHash = trace.hash
        result.traceTail = trace.tail()
        result.endTick = now / Self.tickUnits
        return result
    }

    func draw(_ mean: UInt64) -> UInt64 { now + 1 + rng.next() % max(mean, 1) }
    func chance(_ p: Double) -> Bool { SimulatedNetwork.chance(p, &rng) }

    func handle(_ event: Event) {
        switch event {
        case .tick(let k, let inc):
            guard nodes[k].incarnation == inc, nodes[k].core != nil else { return }
            trace.record(now, "tick", k)
            input(k, .tick)
            queue.push(.tick(node: k, incarnation: inc), at: now + drift.nextInterval(node: k))
        case .deliver(let message):
            guard let k = index(of: message.to), nodes[k].core != nil else { return }
            trace.record(now, message.kindName, k, message.term, UInt64(index(of: message.from) ?? 0))
            input(k, .message(message))
        case .diskDone(let k, let inc):
            guard nodes[k].incarnation == inc, let rd = nodes[k].pending else { return }
            trace.record(now, "disk", k)
            complete(k, rd)
        case .crash:
            if !healed { crashSomeNode() }
            if !healed && profile.crashInterval > 0 { queue.push(.crash, at: draw(profile.crashInterval * 2)) }
        case .restart(let k):
            if nodes[k].core == nil { start(k) }
        case .partition:
            if !healed { startPartition() }
        case .healPartition(let id):
            if id == partitionID {
                blocked = []
                trace.record(now, "heal-partition", 0)
            }
            if !healed && profile.partitionInterval > 0 { queue.push(.partition, at: draw(profile.partitionInterval * 2)) }
        case .propose:
            if !healed {
                clientPropose()
                queue.push(.propose, at: draw(profile.proposalInterval * 2))
            }
        case .heal:
            healAll()
        case .livenessProbe:
            livenessProbe()
        case .membership:
            if !healed {
                changeMembership()
                queue.push(.membership, at: draw(profile.membershipInterval * 2))
            }
        case .transfer:
            if !healed {
                startTransfer()
                queue.push(.transfer, at: draw(profile.transferInterval * 2))
            }
        case .client:
            if !healed {
                clientOperation()
                queue.push(.client, at: draw(profile.clientInterval * 2))
            }
        case .retire(let k):
            retire(k)
        case .clientTimeouts:
            expireClientOperations()
            queue.push(.clientTimeouts, at: now + 20 * Self.tickUnits)
        }
    }

    func index(of id: NodeID) -> Int? {
        for k in ids.indices where ids[k] == id { return k }
        return nil
    }

    // MARK: Nodes

    func start(_ k: Int) {
        let node = nodes[k]
        guard !node.retired else { return }
        var config = options.raft
        if options.fullWorkload {
            config.snapshotThreshold = profile.snapshotThreshold
            config.snapshotTrailingEntries = profile.snapshotTrailing
            config.snapshotChunkSize = 64
            config.snapshotApplyTimeout = 10
        }
        config.randomSeed = options.seed &+ UInt64(k) &* 7919 &+ UInt64(node.incarnation) &* 104_729
        if options.readMode.usesLease(seed: options.seed) && config.checkQuorum {
            config.readOnlyOption = .leaseBased
            config.maxClockDriftPercent = options.leaseDriftBoundPercent
        }
        do {
            let snapshot = try node.storage.snapshot()
            config.applied = snapshot.metadata.index
            var machine = RegisterMachine()
            if !snapshot.isEmpty { try machine.restore(from: snapshot) }
            node.machine = machine
            node.core = try RaftCore(id: node.id, config: config, storage: node.storage)
        } catch {
            result.unexpectedErrors.append("restart of \(node.id) failed: \(error)")
            return
        }
        node.incarnation += 1
        checker.observeRestart(node: node.id, durableTerm: node.storage.storedHardState.term)
        observe(k)
        trace.record(now, "start", k)
        queue.push(.tick(node: k, incarnation: node.incarnation), at: now + 1 + rng.next() % Self.tickUnits)
    }

    func input(_ k: Int, _ input: Input) {
        let node = nodes[k]
        guard node.core != nil else { return }
        if node.pending != nil {
            node.inbox.append(input)
            return
        }
        apply(k, input)
        drive(k)
    }

    func apply(_ k: Int, _ input: Input) {
        let node = nodes[k]
        guard var core = node.core else { return }
        node.core = nil  // keep the core uniquely referenced while it mutates
        switch input {
        case .tick:
            core.tick()
        case .message(let m):
            do { try core.step(m) } catch { result.unexpectedErrors.append("\(node.id) step \(m.kindName): \(error)") }
        case .propose(let data):
            _ = try? core.propose(data, timestamp: now)
        case .clientWrite(let op, let data):
            do {
                if case .appended(let index, let term) = try core.propose(data, timestamp: now) {
                    pendingWrites[index, default: []].append((op, term))
                }
            } catch {
                history.complete(op, status: .fail, at: now)  // refused: never appended
            }
        case .clientRead(let op):
            do {
                try core.readIndex(context: UInt64(op.rawValue))
                node.pendingReads[UInt64(op.rawValue)] = (history.operations[op.rawValue].key, now)
            } catch {
                history.complete(op, status: .fail, at: now)
            }
        case .confChange(let change):
            _ = try? core.proposeConfChange(change)
        case .transfer(let target):
            if (try? core.transferLeadership(to: target)) != nil { result.transfers += 1 }
        }
        node.core = core
        observe(k)
    }

    /// Feeds the checker the node's role and term after a change.
    func observe(_ k: Int) {
        let node = nodes[k]
        guard let core = node.core else { return }
        checker.observeTerm(node: node.id, term: core.term)
        if core.role == .leader && !leadersSeen.contains(core.term) {
            leadersSeen.insert(core.term)
            if let t = pendingTransfer, t.target == node.id, core.term > t.term {
                result.transfersCompleted += 1
                pendingTransfer = nil
            }
            let log = core.log
            let snapshotIndex = ((try? log.firstIndex()) ?? 1) - 1
            checker.observeLeader(node: node.id, term: core.term, snapshotIndex: snapshotIndex) { try? log.term(at: $0) }
        }
    }

    /// Takes the node's `Ready`s through the shared `ReadyExecutor`: its first step
    /// (leader appends leave at once) runs now; the rest waits until the disk write
    /// completes. Writes without disk latency finish in the loop (no recursion).
    func drive(_ k: Int) {
        let node = nodes[k]
        let shell = SimulatorShell(self, k)
        while node.pending == nil {
            let next: Ready?
            do { next = try shell.nextReady() } catch {
                result.unexpectedErrors.append("\(node.id) ready: \(error)")
                return
            }
            guard let rd = next else { return }
            do { try executor.begin(rd, shell: shell) } catch {
                result.unexpectedErrors.append("\(node.id) apply: \(error)")
            }
            node.pending = rd
            let writes = !rd.entries.isEmpty || rd.hardState != nil || rd.snapshot != nil
            if writes && profile.maxDiskDelay > 0 {
                queue.push(.diskDone(node: k, incarnation: node.incarnation), at: now + rng.next() % (profile.maxDiskDelay + 1))
                return
            }
            finish(k, rd)
        }
    }

    /// The disk write finished: finish the `Ready`, then take the next ones.
    func complete(_ k: Int, _ rd: Ready) {
        finish(k, rd)
        drive(k)
    }

    /// The rest of the `Ready` (persist, send, apply, advance: `ReadyExecutor.finish`);
    /// then feed the core everything that queued up during the write as one batch (like
    /// a real runtime), for the next `Ready`.
    func finish(_ k: Int, _ rd: Ready) {
        let node = nodes[k]
        let confBefore = node.core?.confState
        let wasLeader = node.core?.role == .leader
        do { try executor.finish(rd, shell: SimulatorShell(self, k)) } catch {
            result.unexpectedErrors.append("\(node.id) persist: \(error)")
        }
        if let before = confBefore, let after = node.core?.confState, before != after {
            configurationApplied(k, from: before, to: after, wasLeader: wasLeader)
        }
        node.pending = nil
        observe(k)
        if node.core != nil, !node.inbox.isEmpty {
            let batch = node.inbox
            node.inbox = []
            for next in batch { apply(k, next) }
        }
    }

    /// Writes to the node's durable storage: the snapshot, then the entries, then the
    /// hard state (if given), telling the checker what became durable. A crash
    /// mid-write (`crash`) persists a prefix.
    func persist(_ k: Int, snapshot: Snapshot?, entries: [LogEntry], hardState: RaftState?) throws {
        let node = nodes[k]
        if let snapshot {
            try node.storage.applySnapshot(snapshot)
            try node.machine.restore(from: snapshot)
        }
        if !entries.isEmpty {
            try node.storage.append(entries)
            for entry in entries {
                let previous = entry.index > 1 ? ((try? node.storage.term(at: entry.index - 1)) ?? 0) : 0
                checker.observeLogEntry(node: node.id, entry: entry, previousTerm: previous)
            }
        }
        if let hs = hardState {
            try node.storage.setHardState(hs)
            checker.observePersistedTerm(node: node.id, term: hs.term)
        }
    }

    func livenessMarker(_ entry: LogEntry) -> UInt64? {
        guard let (_, op) = RegisterMachine.Command.decode(entry.data) else { return nil }
        return op
    }

    // MARK: Network

    func send(_ m: RaftMessage) {
        guard let from = index(of: m.from), let to = index(of: m.to), !blocked.contains(from * 16 + to) else { return }
        for time in SimulatedNetwork.arrivals(at: now, profile, &rng) { queue.push(.deliver(m), at: time) }
    }

    func startPartition() {
        partitionID += 1
        blocked = SimulatedNetwork.partition(nodes: nodes.count, &rng)
        result.partitions += 1
        trace.record(now, "partition", 0, UInt64(blocked.count))
        queue.push(.healPartition(id: partitionID), at: draw(1_500))
    }

    func crashSomeNode() {
        let live = nodes.indices.filter { !nodes[$0].retired }
        let up = live.filter { nodes[$0].core != nil }
        // Keep a majority up during the faulty phase so that there is progress to
        // check; any node, the leader half of the time.
        guard up.count > live.count / 2 + 1 || (up.count == live.count && live.count == 3) else { return }
        var victim = up[Int(rng.next() % UInt64(up.count))]
        if rng.next() % 2 == 0, let leader = up.first(where: { nodes[$0].core?.role == .leader }) { victim = leader }
        crash(victim)
        queue.push(.restart(node: victim), at: draw(800))
    }

    /// Kills a node: a disk write in progress is torn (a random prefix of its entries
    /// survives, the hard state only if everything before it did); everything in
    /// memory is lost.
    func crash(_ k: Int) {
        let node = nodes[k]
        if let rd = node.pending {
            let limit = rd.entries.isEmpty ? 0 : Int(rng.next() % UInt64(rd.entries.count + 1))
            let keepsHardState = rng.next() % 2 == 0 && limit == rd.entries.count
            do {
                try persist(k, snapshot: rd.snapshot, entries: Array(rd.entries.prefix(limit)),
                            hardState: keepsHardState ? rd.hardState : nil)
            } catch {
                result.unexpectedErrors.append("\(node.id) torn write: \(error)")
            }
        }
        node.core = nil
        node.pending = nil
        node.inbox = []
        node.incarnation += 1
        abandonClientOperations(k)
        result.crashes += 1
        trace.record(now, "crash", k)
        let log = node.storage
        let first = (try? log.firstIndex()) ?? 1
        let commit = log.storedHardState.commitIndex
        checker.observeDurableLog(node: node.id, snapshotIndex: first - 1, commitIndex: commit) { try? log.term(at: $0) }
    }

    // MARK: Clients

    func clientPropose() {
        let up = nodes.indices.filter { nodes[$0].core != nil && !nodes[$0].retired }
        guard !up.isEmpty else { return }
        var target = up[Int(rng.next() % UInt64(up.count))]
        if rng.next() % 5 != 0, let leader = up.first(where: { nodes[$0].core?.role == .leader }) { target = leader }
        let op = nextOperation
        nextOperation += 1
        // Keys from 100 up: outside the registers whose history is checked.
        let command = RegisterMachine.Command.write(key: 100 + rng.next() % 8, value: op)
        input(target, .propose(command.encoded(operation: op)))
    }

    // MARK: Healing and liveness

    func healAll() {
        healed = true
        healTime = now
        blocked = []
        profile.lossRate = 0
        profile.duplicateRate = 0
        trace.record(now, "heal", 0)
        for k in nodes.indices where nodes[k].core == nil && !nodes[k].retired { start(k) }
        queue.push(.livenessProbe, at: now + Self.tickUnits)
    }

    /// Proposes a marker through the current leader every few ticks until one is
    /// applied somewhere.
    func livenessProbe() {
        guard !livenessDone else { return }
        if let leader = nodes.indices.first(where: { nodes[$0].core?.role == .leader }) {
            let op = nextOperation
            nextOperation += 1
            livenessMarkers.insert(op)
            input(leader, .propose(RegisterMachine.Command.write(key: 1_000, value: op).encoded(operation: op)))
        }
        queue.push(.livenessProbe, at: now + 3 * Self.tickUnits)
    }
}
