public import AegisRaft
public import AegisStorage
import AegisKV
import AegisReplication
import AegisTransport
import Logging
import Foundation

/// Options of one run of the node simulator.
public struct NodeSimulationOptions: Sendable {
    /// The seed: same seed, same run.
    public var seed: UInt64
    /// Number of nodes; nil draws 3 or 5 from the seed.
    public var nodeCount: Int?
    /// Length of the faulty phase, in ticks.
    public var ticks: Int = 1_500
    /// How many recent events a failure report shows.
    public var traceTail = 40
    /// An ordering bug injected into every node's `Ready` handling (mutation tests).
    public var mutation: ReadyMutation = .none
    /// Syncs every node's simulated disk skips (mutation tests).
    public var syncMutations: Set<SyncMutation> = []
    /// Also send the expiry, keyspace and transaction commands (on keys apart from the
    /// registers) and require, at the end, that replicas at the same applied index have
    /// the same state digest. Off by default, so that the traces of the seeds the tests
    /// and `scripts/mutation-check` rely on are unchanged (`aegis-sim --keyspace`).
    public var keyspaceWorkload = false
    /// How far, in percent, a node's tick period may differ from the true one
    /// (`TickDrift`).
    public var tickDriftPercent = 10
    /// Lease reads (on seeds with check-quorum), safe reads, or one per seed.
    public var readMode: SimulatedReadMode = .mixed
    /// The drift bound the nodes' lease assumes (`RaftConfig.maxClockDriftPercent`).
    public var leaseDriftBoundPercent = 10

    /// Creates options for a seed.
    public init(seed: UInt64) { self.seed = seed }
}

/// The outcome of one run of the node simulator.
public struct NodeSimulationResult: Sendable {
    public var seed: UInt64
    public var nodeCount: Int
    public var profile: FaultProfile
    /// Events processed.
    public var steps = 0
    /// Distinct log indexes applied somewhere.
    public var commits = 0
    /// Leaders elected (distinct terms with a leader).
    public var elections = 0
    /// Process kills (everything written survives) and power losses (what was not
    /// synced is lost, the last unsynced write may be torn).
    public var crashes = 0
    public var powerLosses = 0
    /// Graceful stops completed (a leader handed leadership over first).
    public var gracefulStops = 0
    public var tornWrites = 0
    public var partitions = 0
    /// Bit flips and unreadable sectors the simulated disks injected into synced files,
    /// and the times a node noticed damage (refused to open, or failed a read).
    public var corruptionsInjected = 0
    public var corruptionsDetected = 0
    /// Nodes whose storage refused to open, and replacements completed (removed and
    /// added back empty).
    public var refusals = 0
    public var replacements = 0
    /// Snapshots installed from a leader (counted on the receiving node's restart-free
    /// applies) and taken.
    public var snapshotsTaken = 0
    /// Client writes acknowledged, and acknowledged writes whose log position later
    /// held a different entry on some node.
    public var ackedWrites = 0
    public var lostAcked = 0
    /// Client operations recorded, and successful reads among them.
    public var operations = 0
    public var readsChecked = 0
    /// Raft safety violations found.
    public var violations: [Violation] = []
    /// Keys whose history is not linearizable (or could not be decided).
    public var linearizabilityViolations: [String] = []
    /// Set when the cluster failed to commit after healing.
    public var livenessFailure: String?
    /// Errors that must not happen (a storage that failed in a way it does not promise).
    public var unexpectedErrors: [String] = []
    /// A hash of every event in order: equal for equal seeds.
    public var traceHash: UInt64 = 0
    public var traceTail: [String] = []
    public var endTick: UInt64 = 0

    /// `true` if nothing went wrong.
    public var passed: Bool {
        violations.isEmpty && lostAcked == 0 && livenessFailure == nil && unexpectedErrors.isEmpty
            && linearizabilityViolations.isEmpty
    }
}

/// The production node loop, simulated end to end: each node is a `ReplicaNode` (the
/// `NodeLoop` that `aegis serve` runs) over a real `DiskStorage` on its own
/// `SimulatedFileSystem`, with the key-value state machine. One thread, virtual time, one
/// seed: message loss, duplication, delay and partitions; process kills; power losses
/// that drop what was not synced, tear the last write and, at a per-seed rate, flip bits
/// or make sectors unreadable in synced files. A node whose storage refuses to open is
/// replaced: removed from the cluster and added back empty. Clients write (`SET`),
/// compare-and-swap and read linearizably (ReadIndex) through any node, so followers
/// forward. Checked: every node applies the same entry at each index, no acknowledged
/// write is lost, and the history of every key is linearizable; after healing, a leader
/// must commit a new write.
public final class NodeSimulator: @unchecked Sendable {
    static let tickUnits: UInt64 = 10
    static let keys = 8

    enum Event {
        case tick(node: Int, incarnation: Int)
        case deliver(Message)
        case crash
        case restart(node: Int)
        case powerOff(node: Int, incarnation: Int)
        case partition
        case healPartition(id: Int)
        case client
        case heal
        case livenessProbe
        case replace
        case snapshotWork(node: Int, incarnation: Int, work: @Sendable () -> Void)
    }

    final class SimNode {
        let id: NodeID
        var disk: SimulatedFileSystem
        var replica: ReplicaNode?
        var incarnation = 0
        var started = false
        /// The storage refused to open: the node waits to be replaced.
        var refused = false
        /// Replaced nodes start empty and wait to be added.
        var joining = false
        /// A brownout is under way: the machine goes dark at its `powerOff` event.
        var losingPower = false
        /// A graceful stop is under way: the node stops once its handover finished.
        var stoppingGracefully = false
        /// A leader's term and last index when its graceful stop began: it appends
        /// nothing more in that term (an entry appended while it hands leadership over
        /// could be cut off by the new leader's term).
        var handoverStart: (term: Term, last: LogIndex)?
        init(id: NodeID, disk: SimulatedFileSystem) {
            self.id = id
            self.disk = disk
        }
    }

    let options: NodeSimulationOptions
    var rng: SplitMix64
    var profile: FaultProfile
    var diskConfiguration: SimulatedFileSystem.Configuration
    let raft: RaftConfig
    /// Each node's tick period.
    var drift: TickDrift
    var queue = EventQueue<Event>()
    var now: UInt64 = 0
    var nodes: [SimNode] = []
    let ids: [NodeID]
    var result: NodeSimulationResult
    var checker = InvariantChecker()
    var history = History()
    var trace = TraceRecorder(capacity: 40)
    var blocked: Set<Int> = []
    var partitionID = 0
    var healed = false
    var livenessDone = false
    var leadersSeen: Set<Term> = []
    /// The first entry hash applied at each index (any node), and the indexes where a
    /// node later applied a different one.
    var appliedAt: [LogIndex: UInt64] = [:]
    var conflicts: Set<LogIndex> = []
    /// Acknowledged writes by log index.
    var acknowledged: [LogIndex: Int] = [:]
    /// Values written so far per key (candidates for a compare-and-swap).
    var written: [UInt64: [UInt64]] = [:]
    var nextValue: UInt64 = 1
    /// The replacement in progress: the node and whether its removal was applied.
    var replacing: (node: Int, removed: Bool, proposed: Bool)?
    let logger = Logger(label: "aegis.sim", factory: { _ in SwiftLogNoOpLogHandler() })
    let clock = VirtualClock()
    let debugging = ProcessInfo.processInfo.environment["SIMDEBUG"] != nil

    /// Prepares a run.
    public init(options: NodeSimulationOptions) {
        self.options = options
        var generator = SplitMix64(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ 2)
        profile = FaultProfile.draw(&generator)
        let n = options.nodeCount ?? (generator.next() % 2 == 0 ? 3 : 5)
        var config = RaftConfig(electionTimeout: 10, heartbeatInterval: 2)
        config.maxSizePerMessage = 4 << 10
        config.maxInflightMessages = 16
        config.maxInflightBytes = 64 << 10
        config.maxUncommittedBytes = 64 << 10
        config.snapshotThreshold = generator.next() % 3 == 0 ? 0 : 20 + generator.next() % 60
        config.snapshotTrailingEntries = generator.next() % 16
        config.snapshotChunkSize = 256
        config.snapshotApplyTimeout = 10
        config.checkQuorum = generator.next() % 2 == 0
        if options.readMode.usesLease(seed: options.seed) && config.checkQuorum {
            config.readOnlyOption = .leaseBased
            config.maxClockDriftPercent = options.leaseDriftBoundPercent
        }
        raft = config
        // One seed in four has a disk that also damages synced data on a power loss.
        let damaging = generator.next() % 4 == 0
        diskConfiguration = SimulatedFileSystem.Configuration(
            tornWrites: true, orderedNameChanges: true,
            bitFlipRate: damaging ? 0.3 : 0, readErrorRate: damaging ? 0.1 : 0)
        diskConfiguration.mutations = options.syncMutations
        rng = generator
        ids = (1...n).map { NodeID("n\($0)") }
        drift = TickDrift(nodes: n, tickUnits: Self.tickUnits, maxDriftPercent: options.tickDriftPercent, seed: options.seed)
        result = NodeSimulationResult(seed: options.seed, nodeCount: n, profile: profile)
        trace = TraceRecorder(capacity: options.traceTail)
    }

    // MARK: Running

    /// Runs the simulation to the end and returns its result.
    public func run() -> NodeSimulationResult {
        for id in ids { nodes.append(SimNode(id: id, disk: SimulatedFileSystem(configuration: diskConfiguration))) }
        for k in nodes.indices { start(k) }
        let mainEnd = UInt64(options.ticks) * Self.tickUnits
        queue.push(.heal, at: mainEnd)
        if profile.partitionInterval > 0 { queue.push(.partition, at: draw(profile.partitionInterval * 2)) }
        if profile.crashInterval > 0 { queue.push(.crash, at: draw(profile.crashInterval * 2)) }
        queue.push(.client, at: draw(max(profile.clientInterval, 30) * 2))
        queue.push(.replace, at: now + 20 * Self.tickUnits)
        let deadline = mainEnd + UInt64(30 * raft.electionTimeout) * Self.tickUnits
        while !livenessDone, let (time, event) = queue.pop() {
            if time > deadline { break }
            now = time
            clock.now = time
            result.steps += 1
            if debugging && result.steps % 200_000 == 0 { print("DEBUG step \(result.steps) t=\(now) \(event)") }
            handle(event)
            if !checker.violations.isEmpty || !conflicts.isEmpty { break }
        }
        if checker.violations.isEmpty && conflicts.isEmpty && !livenessDone {
            result.livenessFailure = "no leader committed a new write within 30 election timeouts after healing; "
                + nodes.map(describe).joined(separator: "; ")
        }
        for node in nodes { countDisk(node.disk) }
        if options.keyspaceWorkload { checkReplicasAgree() }
        let verdict = LinearizabilityChecker.check(history.operations, initialValue: 0, maxStates: 2_000_000)
        for violation in verdict.violations {
            result.linearizabilityViolations.append(violation.description)
            result.linearizabilityViolations.append("history of key \(violation.key): "
                + history.operations.filter { $0.key == violation.key }.map(\.description).joined(separator: "; "))
        }
        for (key, reason) in verdict.unknownKeys { result.linearizabilityViolations.append("key \(key): undecided (\(reason))") }
        result.operations = history.operations.count
        result.violations = checker.violations
        result.lostAcked = conflicts.reduce(0) { $0 + (acknowledged[$1] ?? 0) }
        result.commits = appliedAt.count
        result.elections = leadersSeen.count
        result.traceHash = trace.hash
        result.traceTail = trace.tail()
        result.endTick = now / Self.tickUnits
        return result
    }

    /// Adds what a disk did to the totals (at the end, or when a replacement wipes it).
    func countDisk(_ disk: SimulatedFileSystem) {
        let stats = disk.statistics
        result.tornWrites += stats.tornWrites
        result.corruptionsInjected += stats.bitFlips + stats.readErrors
    }

    func describe(_ node: SimNode) -> String {
        guard let replica = node.replica else { return "\(node.id): \(node.refused ? "refused" : "down")" }
        let core = replica.core
        return "\(node.id): \(core.role) term \(core.term) commit \(core.log.committed) applied \(replica.appliedIndex) "
            + "voters \(core.confState.voters.sorted())\(replica.failure.map { " failed: \($0)" } ?? "")"
    }

    func draw(_ mean: UInt64) -> UInt64 { now + 1 + rng.next() % max(mean, 1) }
    func chance(_ p: Double) -> Bool { SimulatedNetwork.chance(p, &rng) }

    func handle(_ event: Event) {
        switch event {
        case .tick(let k, let incarnation):
            guard nodes[k].incarnation == incarnation, let replica = nodes[k].replica else { return }
            trace.record(now, "tick", k)
            replica.tick()
            observe(k)
            queue.push(.tick(node: k, incarnation: incarnation), at: now + drift.nextInterval(node: k))
        case .deliver(let message):
            guard let k = index(of: message.to), let replica = nodes[k].replica else { return }
            trace.record(now, "deliver-\(message.type)", k, 0, UInt64(index(of: message.from) ?? 0))
            replica.deliver([message])
            observe(k)
        case .crash:
            if !healed { crashSomeNode() }
            if !healed && profile.crashInterval > 0 { queue.push(.crash, at: draw(profile.crashInterval * 2)) }
        case .powerOff(let k, let incarnation):
            if nodes[k].incarnation == incarnation { powerOff(k) }
        case .restart(let k):
            if nodes[k].replica == nil && !nodes[k].refused { start(k) }
        case .partition:
            if !healed { startPartition() }
        case .healPartition(let id):
            if id == partitionID {
                blocked = []
                trace.record(now, "heal-partition", 0)
            }
            if !healed && profile.partitionInterval > 0 { queue.push(.partition, at: draw(profile.partitionInterval * 2)) }
        case .client:
            if !healed {
                clientOperation()
                queue.push(.client, at: draw(max(profile.clientInterval, 30) * 2))
            }
        case .heal:
            healAll()
        case .livenessProbe:
            livenessProbe()
        case .snapshotWork(let k, let incarnation, let work):
            guard nodes[k].incarnation == incarnation, let replica = nodes[k].replica else { return }
            trace.record(now, "snapshot", k)
            work()
            replica.collectSnapshots()
            result.snapshotsTaken += 1
            observe(k)
        case .replace:
            continueReplacement()
            queue.push(.replace, at: now + 20 * Self.tickUnits)
        }
    }

    func index(of id: NodeID) -> Int? { ids.firstIndex(of: id) }

    var currentLeader: Int? {
        nodes.indices.first { nodes[$0].replica?.core.role == .leader && nodes[$0].replica?.failure == nil }
    }

    /// Feeds the checker the node's term and, for a new leader, its log.
    func observe(_ k: Int) {
        if nodes[k].losingPower && nodes[k].disk.isPowerOff {
            powerOff(k)
            return
        }
        guard let replica = nodes[k].replica else { return }
        if nodes[k].stoppingGracefully && replica.gracefulStopFinished {
            finishGracefulStop(k)
            return
        }
        if let failure = replica.failure {
            // A storage failure (an unreadable sector) or a divergence stops the node
            // for good: it is replaced. (With the power going out, it is the power.)
            if !nodes[k].losingPower { refuse(k, "\(failure)") }
            return
        }
        let core = replica.core
        if nodes[k].stoppingGracefully, let start = nodes[k].handoverStart, core.role == .leader, core.term == start.term,
           let last = try? core.log.lastIndex(), last > start.last {
            result.unexpectedErrors.append("\(nodes[k].id) appended entries \(start.last + 1)...\(last) in term \(start.term) "
                                           + "while handing leadership over to stop")
            nodes[k].handoverStart = nil
        }
        checker.observeTerm(node: nodes[k].id, term: core.term)
        if core.role == .leader && !leadersSeen.contains(core.term) {
            leadersSeen.insert(core.term)
            let log = core.log
            let snapshotIndex = ((try? log.firstIndex()) ?? 1) - 1
            checker.observeLeader(node: nodes[k].id, term: core.term, snapshotIndex: snapshotIndex) { try? log.term(at: $0) }
        }
    }
}

/// The simulator's wall clock, read by every node (milliseconds = time units).
final class VirtualClock: @unchecked Sendable {
    var now: UInt64 = 0
}
