public import AegisCRDT
public import AegisCluster
public import AegisKV
public import AegisRaft
public import AegisStorage
public import AegisTransport

/// Where a node of the cluster listens for its peers.
public typealias PeerEndpoint = PeerAddress

/// The configuration of one node runtime.
public struct NodeConfiguration: Sendable {
    /// This node.
    public var nodeID: NodeID
    /// The founding voters of a new cluster. Used only when the data directory is
    /// empty: the log is bootstrapped with them. Empty for a node that joins an
    /// existing cluster (it is added by the leader and learns the log from it).
    public var bootstrapVoters: [NodeID]
    /// The Raft settings (timeouts in ticks). `raft.readOnlyOption` chooses how
    /// linearizable reads are confirmed: `.safe` (a heartbeat round per batch) or
    /// `.leaseBased` (the leader's lease, `raft.leaseDurationTicks` of its ticks from
    /// a round a quorum acknowledged; every node must use the same option, and the
    /// node's ticks must not run late by more than `raft.maxClockDriftPercent`).
    public var raft: RaftConfig
    /// Real time per tick.
    public var tickInterval: Duration = .milliseconds(10)
    /// How long a client request may wait (for a leader, for commit, for a read index)
    /// before it fails with `ReplicationError.timeout`.
    public var requestTimeout: Duration = .seconds(5)
    /// State machine limits (key, value and set or hash sizes).
    public var limits: StateMachine.Limits = StateMachine.Limits()
    /// The replica ID the state machine issues CRDT metadata (dots, HLC timestamps of
    /// sets and hashes) under: the same on every node of a cluster (`aegis serve` uses
    /// the cluster ID), distinct between clusters that replicate to each other.
    public var replica: ReplicaID = StateMachine.defaultReplica
    /// The largest log entry (an encoded command) a client may propose, in bytes
    /// (default 32 MiB). Larger ones are refused at once, before anything is logged.
    /// Must stay below the transport's maximum frame size (64 MiB by default) with
    /// room for the message header, so an append carrying it always fits in a frame.
    public var maxEntryBytes: Int = 32 << 20
    /// Client requests (a pipelined batch counts each command) that may wait in the
    /// node's input queue (default 65,536); more are refused with
    /// ``ReplicationError/overloaded`` until the loop catches up.
    public var maxQueuedRequests: Int = 65_536
    /// Batches of peer messages that may wait in the input queue (default 4,096); more
    /// are dropped and counted (Raft re-sends).
    public var maxQueuedMessageBatches: Int = 4_096
    /// Where a snapshot arriving from the leader in chunks is reassembled: a temporary
    /// file in this directory (normally the data directory), so a transfer costs disk,
    /// not memory. `nil` reassembles in memory (tests). Either way the size is bounded
    /// by `raft.maxSnapshotBytes`.
    public var snapshotReceiveDirectory: String?
    /// `true` for a node whose data directory was created empty to join an existing
    /// cluster: it does not vote or campaign until the log it receives contains the
    /// change that adds it (then ``onAdded`` is called, to persist that).
    public var awaitingAdd = false
    /// Called once on the loop thread when a node that was ``awaitingAdd`` applies the
    /// change that adds it.
    public var onAdded: (@Sendable () -> Void)?
    /// A snapshot rewrites the whole state, so with a large state a snapshot every
    /// `raft.snapshotThreshold` entries costs far more than the log it lets go. When the
    /// core asks for one, it is taken only if the commands applied since the last one
    /// add up to at least this fraction of that snapshot's bytes; otherwise the core
    /// asks again `snapshotThreshold` entries later. The log since the last snapshot is
    /// held in memory, so this is also the bound on the log's memory relative to the
    /// state's (0.25: at most about a quarter more), and on the entries a restart
    /// replays. 0: every time the core asks. Each member applies 0.625–1 times this (a
    /// factor fixed by its node ID), so that a cluster's members snapshot at different
    /// indexes.
    public var snapshotLogFraction = 0.25
    /// Whether a restart's replay of a long log (10,000 entries or more) takes its
    /// arena memory from a thread that pre-faults it (`PrefaultingSlabSource`), off the
    /// node loop. For a real process (`aegis serve` sets it); off by default so a
    /// simulation starts no threads. (Parsing a stored snapshot of 64 MiB or more with
    /// `snapshotPreparer`, which only a real file system uses, always has such a thread.)
    public var prefaultsReplayMemory = false
    /// The index continuous WAL archiving has shipped through, when this member archives
    /// its log (`aegis serve --backup-repo`): the log is not compacted past it, so the
    /// archiver never finds entries gone. `nil` (or no function): no hold.
    public var compactionFloor: (@Sendable () -> LogIndex?)?
    /// How many entries a compaction may keep for the archiver (`compactionFloor`) at
    /// most: beyond that (the repository unreachable for long), the log is compacted
    /// anyway, memory stays bounded, and the archiver reports the gap.
    public var maxEntriesHeldForArchiving: UInt64 = 1_000_000
    /// Called on the node loop with every command entry this node applies and its
    /// result, in log order (pub/sub delivery and keyspace notifications). It runs on the apply path,
    /// so it must return quickly and never block.
    public var onApplied: (@Sendable (LogEntry, CommandResult) -> Void)?
    /// Ticks between the leader's looks for expired keys: each look proposes at most
    /// one `Command.purgeExpired` (and none while the previous one is not applied).
    /// With the default 10 ms tick, 10 is every 100 ms.
    public var expiryIntervalTicks: Int = 10
    /// The most keys one `Command.purgeExpired` removes: the leader's expiry work per
    /// look, and the size of the entry it proposes, are bounded by it. Keys that expire
    /// faster than `expiryBatchSize` per `expiryIntervalTicks` are still absent to
    /// every read and command; they are only removed later.
    public var expiryBatchSize: Int = 512
    /// How long a leader asked to stop gracefully (``NodeRuntime/stopGracefully()``,
    /// SIGTERM in `aegis serve`) may spend handing leadership to the most caught-up
    /// voter before it stops anyway. Default 2 s.
    public var handoverTimeout: Duration = .seconds(2)
    /// A pass of the node loop longer than this, counting the time its oldest input
    /// waited in the queue, is logged as a warning with where its time went (the queue
    /// wait, inputs, building the `Ready`, persist and fsync, send, apply), at most
    /// once a second, and counted in `aegis_slow_loop_iterations_total`. Every client of
    /// the node waits behind a pass. Default 100 ms; `nil`: never logged.
    public var slowLoopWarning: Duration? = .milliseconds(100)
    /// How many times a follower sends one client write to a leader: when the leader it
    /// forwarded to answers that it is not (or no longer) the leader, or that it dropped
    /// the proposal during a leadership transfer — both mean the write was not appended —
    /// the follower forwards it again to the new leader, up to this many sends in all.
    /// Default 4. 1: no re-forwarding.
    public var maxForwardAttempts = 4
    /// Called on the leader before it proposes a client command (its encoded bytes),
    /// local or forwarded by a follower: a refusal fails the command before anything
    /// is logged. `aegis serve` uses it for the DR write lease. `nil`: no check.
    public var writeGuard: (@Sendable ([UInt8]) -> ReplicationError?)?

    /// Creates a configuration.
    public init(nodeID: NodeID, bootstrapVoters: [NodeID], raft: RaftConfig = NodeConfiguration.defaultRaft) {
        self.nodeID = nodeID
        self.bootstrapVoters = bootstrapVoters
        self.raft = raft
    }

    /// Raft settings suited to a 10 ms tick: 1 s election timeout (randomised to
    /// 1–2 s), 100 ms heartbeats, snapshots every 100,000 entries.
    public static var defaultRaft: RaftConfig {
        var c = RaftConfig(electionTimeout: 100, heartbeatInterval: 10)
        c.snapshotThreshold = 100_000
        c.snapshotTrailingEntries = 10_000
        c.maxSizePerMessage = 4 << 20
        c.maxInflightMessages = 512
        c.maxInflightBytes = 64 << 20
        c.maxUncommittedBytes = 256 << 20
        c.snapshotApplyTimeout = 500
        return c
    }

    var timeoutTicks: Int {
        let t = requestTimeout.components, i = tickInterval.components
        let total = Double(t.seconds) + Double(t.attoseconds) / 1e18
        let tick = Double(i.seconds) + Double(i.attoseconds) / 1e18
        return max(1, Int((total / max(tick, 1e-6)).rounded(.up)))
    }
}

/// Why a client request failed.
public enum ReplicationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No leader is known (an election is in progress or no quorum is reachable).
    case noLeader
    /// The request was sent to the leader, which refused it; `leader` is the hint.
    case notLeader(leader: NodeID?)
    /// The outcome is unknown: the request timed out. A write may still commit.
    case timeout
    /// The write was not committed: another entry took its log position (leadership
    /// changed before it was replicated).
    case lost
    /// The proposal was refused by Raft (for example the uncommitted-bytes limit or a
    /// leadership transfer in progress); the text says why.
    case rejected(String)
    /// The node is stopping.
    case shuttingDown
    /// The node stopped because its storage failed; it must be repaired.
    case storageFailed(String)
    /// The node's input queue is full: the request was not queued. Retry later.
    case overloaded
    /// The node stopped serving: its state conflicts with the leader's log (it applied
    /// an entry the cluster does not have). It must be replaced (removed and added back).
    case diverged(String)

    public var description: String {
        switch self {
        case .noLeader: return "no leader is elected"
        case .notLeader(let leader): return "not the leader" + (leader.map { "; the leader is \($0)" } ?? "")
        case .timeout: return "the request timed out; a write may or may not have been applied"
        case .lost: return "the write was not committed (leadership changed); retry"
        case .rejected(let why): return "rejected: \(why)"
        case .shuttingDown: return "the node is shutting down"
        case .storageFailed(let why): return "the node stopped after a storage failure: \(why)"
        case .overloaded: return "the node is overloaded (its request queue is full); retry later"
        case .diverged(let why): return "the node stopped serving: \(why)"
        }
    }
}

/// One member as the node sees it.
public struct MemberStatus: Sendable, Hashable {
    /// The member.
    public var id: NodeID
    /// `true` for a voter, `false` for a learner.
    public var isVoter: Bool
    /// The leader's view of its replication (leader only).
    public var match: LogIndex?
    public var next: LogIndex?
    public var state: ProgressState?
    /// Entries it is behind the leader's last index (leader only).
    public var lag: UInt64?
    /// Its addresses, if known.
    public var address: MemberAddress?
    /// Its status as this node's failure detector sees it (`starting`, `healthy`,
    /// `suspect`, `down`, `leaving`, `left`); this node itself is `healthy` (or `leaving`).
    public var health: AegisCluster.NodeStatus?
    /// The time since this node last heard from it (`nil` for this node).
    public var lastHeard: Duration?
}

/// A snapshot of a node's state, refreshed after every batch of inputs.
public struct NodeStatus: Sendable, Hashable {
    public var nodeID: NodeID
    public var role: RaftRole = .follower
    public var leader: NodeID?
    public var term: Term = 0
    public var commitIndex: LogIndex = 0
    public var appliedIndex: LogIndex = 0
    public var lastIndex: LogIndex = 0
    public var members: [MemberStatus] = []
    public var isJoint = false
    /// Keys in the state machine.
    public var keys = 0
    /// The cluster's DR state (role, epoch, link cursors) as this node applied it.
    public var dr = DRState()
    /// The cluster's active-active settings as this node applied them.
    public var activeActive = ActiveActiveSettings(enabled: false)
    /// The incoming active-active links' cursors, by source cluster ID.
    public var activeActiveCursors: [String: ActiveActiveCursor] = [:]
    /// The size of the active-active metadata (keys, tombstone parts, stable stamp).
    public var activeActiveMetadata = ActiveActiveMetadataSummary()
    /// The incoming active-active links catching up from a peer's whole state, by source.
    public var activeActiveCatchUps: [String: ActiveActiveCatchUpProgress] = [:]
    /// The cluster's active-active topology as this node applied it (`nil`: none set).
    public var activeActiveTopology: ActiveActiveTopology?
    /// Its version (zero: a starting topology, or none).
    public var activeActiveTopologyVersion = ActiveActiveTopologyVersion.zero
    /// Set once the node stopped because of a storage failure.
    public var failure: String?
    /// Whether the node's loop is running.
    public var running = false
    /// The cluster's health as this node sees it (the seed's `ClusterStats`: members by
    /// status, quorum of healthy voters, `ClusterState`).
    public var cluster: ClusterStats?
    /// `true` while writes are refused because the disk is full.
    public var diskFull = false
    /// The recent WAL fsync time: an exponentially weighted average (weight 1/8 for
    /// each new sync), in seconds; `nil` before the first sync.
    public var fsyncSeconds: Double?
    /// The slowest of the last 64 WAL fsyncs, in seconds; `nil` before the first.
    public var slowestRecentFsyncSeconds: Double?
    /// `true` while the node has not yet applied the entries it knew were committed
    /// when it started (it is replaying its log).
    public var replaying = false
    /// `true` while this leader hands leadership over before stopping.
    public var handingOver = false
}

/// An active-active batch read for a peer, and where this node's log starts.
public struct ActiveActiveRead: Sendable {
    /// The batch (its `lastIndex` is at most the node's applied index).
    public var batch: ActiveActiveBatch
    /// The node's first log index (entries before it are compacted).
    public var firstIndex: LogIndex
    /// The node's commit index.
    public var commitIndex: LogIndex
}

/// A page of this node's whole active-active state for a peer's catch-up, and where
/// this node's log starts.
public struct ActiveActiveCatchUpRead: Sendable {
    /// The page (its snapshot index is the node's applied index when it was read).
    public var page: ActiveActiveCatchUpPage
    /// The node's first log index (entries before it are compacted).
    public var firstIndex: LogIndex
    /// The node's commit index.
    public var commitIndex: LogIndex
}

/// Committed log entries read for the change stream.
public struct CommittedEntries: Sendable {
    /// The entries, in order, right after the index asked for (empty when none is
    /// committed after it, or when it is compacted: see `firstIndex`).
    public var entries: [LogEntry]
    /// The node's commit index.
    public var commitIndex: LogIndex
    /// The first index the log still holds: entries before it are compacted.
    public var firstIndex: LogIndex

    /// Creates a read.
    public init(entries: [LogEntry], commitIndex: LogIndex, firstIndex: LogIndex) {
        (self.entries, self.commitIndex, self.firstIndex) = (entries, commitIndex, firstIndex)
    }
}

/// The durable storage a runtime writes through: `RaftLogStorage` plus a batched
/// write that is durable when it returns (if `sync`).
public protocol RuntimeStorage: RaftLogStorage, Sendable {
    /// Appends `entries` (replacing any conflicting suffix) and records `hardState`,
    /// as one batch; with `sync`, returns only once both are durable.
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws

    /// Makes what `persist(sync: false)` saved reach the disk if it is still only in
    /// memory; the node loop calls it every tick. The default does nothing.
    func flushUnsynced() throws

    /// The state machine prepared from the stored snapshot while the storage opened
    /// (see `DiskStorageOptions.snapshotPreparer`), if the storage made one; handed out
    /// once. The default is `nil`.
    func takePreparedSnapshot() -> (any Sendable)?
}

extension RuntimeStorage {
    public func takePreparedSnapshot() -> (any Sendable)? { nil }
    public func flushUnsynced() throws {}
}

extension NodeConfiguration {
    /// A `DiskStorageOptions.snapshotPreparer` that parses the stored snapshot into a
    /// state machine with this configuration's limits and replica ID as the file is
    /// read, while the log is recovered, so a restart does the two at once and never
    /// holds the file's bytes whole; the node uses the result (a `PreparedStateMachine`)
    /// when it is the snapshot the log names.
    public var snapshotPreparer: @Sendable (SnapshotMetadata) -> any SnapshotPreparation {
        let (limits, replica) = (self.limits, self.replica)
        return { _ in StateMachinePreparation(reader: StateMachine(limits: limits, replica: replica).makeSnapshotReader(),
                                              limits: limits, replica: replica) }
    }
}

/// A state machine parsed from the stored snapshot while the storage opened
/// (`NodeConfiguration.snapshotPreparer`).
public struct PreparedStateMachine: Sendable {
    /// The state machine, at the snapshot's index.
    public var machine: StateMachine
    /// The size of the snapshot's data in bytes.
    public var dataBytes: Int
}

/// Feeds a stored snapshot's data to a `KVSnapshotReader` as the storage reads it.
struct StateMachinePreparation: SnapshotPreparation {
    var reader: KVSnapshotReader
    let limits: StateMachine.Limits
    let replica: ReplicaID
    var dataBytes = 0

    /// Pre-faults arena slabs on a second thread while the snapshot is parsed, when it
    /// is large enough to be worth a thread; stopped when the preparation finishes or is
    /// dropped (abandoned).
    var slabs: PrefaultingSlabSource.Lease?

    mutating func expect(dataBytes: Int) {
        reader.announce(totalBytes: dataBytes)
        if dataBytes >= 64 << 20 {
            let lease = PrefaultingSlabSource.Lease(budget: dataBytes / StateMachine.arenaSlabBytes + 1)
            reader.takeSlabs(from: lease.source)
            slabs = lease
        }
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        let consumed = try reader.consume(bytes)
        dataBytes += consumed
        return consumed
    }

    mutating func finish() -> (any Sendable)? {
        slabs = nil  // stops the thread
        var machine = StateMachine(limits: limits, replica: replica)
        guard (try? machine.restore(from: reader)) != nil else { return nil }
        return PreparedStateMachine(machine: machine, dataBytes: dataBytes)
    }
}

extension DiskStorage: RuntimeStorage {
    public func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try save(hardState: hardState, entries: entries, sync: sync)
    }
}

extension DiskStorageOptions {
    /// The options for a node's own log (`aegis serve`, `LocalCluster`): the defaults,
    /// except that there is no writer thread (`writerThread = false`). The node loop is
    /// the log's only writer and blocks on every write it syncs (`ReadyExecutor.run`),
    /// so a writer thread batches nothing more and costs two thread wakes per `Ready`
    /// (the loop waking the writer, the writer waking the loop). What the loop saves
    /// without `sync` (a `Ready` that only moves the commit index) reaches the files
    /// within a tick (`NodeLoop.flushUnsyncedLog`), or sooner with the next synced
    /// write: a backup of the data directory reads the commit index there.
    public static var nodeLog: DiskStorageOptions {
        var options = DiskStorageOptions()
        options.writerThread = false
        return options
    }
}

/// Where a member listens: for its peers (Raft traffic) and, for a server, for its
/// clients (RESP). Travels in the context of the membership change that adds it.
public struct MemberAddress: Sendable, Hashable, CustomStringConvertible {
    /// `host:port` for peers.
    public var peer: String
    /// `host:port` for clients, if the member serves clients.
    public var client: String?

    /// Creates an address pair.
    public init(peer: String, client: String? = nil) {
        self.peer = peer
        self.client = client
    }

    /// `peer` or `peer client`.
    public var description: String { client.map { "\(peer) \($0)" } ?? peer }

    /// Parses `peer` or `peer client`; nil unless each part is `host:port`.
    public init?(parsing text: String) {
        let parts = text.split(separator: " ").map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy({ PeerAddress(parsing: $0) != nil }) else { return nil }
        peer = parts[0]
        client = parts.count == 2 ? parts[1] : nil
    }
}
