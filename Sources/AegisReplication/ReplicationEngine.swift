public import AegisCluster
public import AegisKV
public import AegisRaft
public import AegisTransport

/// The Raft and cluster settings of a `ReplicationEngine`.
public struct ReplicationConfig: Sendable {
    /// The Raft settings (timeouts in ticks).
    public var raft: RaftConfig
    /// The cluster settings.
    public var cluster: ClusterConfig

    /// Defaults: `RaftConfig()` and a cluster named "aegis".
    public init(raft: RaftConfig = RaftConfig(), cluster: ClusterConfig = ClusterConfig(name: "aegis")) {
        self.raft = raft
        self.cluster = cluster
    }
}

/// What one `tick()` of a `ReplicationEngine` produced.
public struct TickResult: Sendable {
    /// Messages to deliver to peers.
    public var messages: [Message]
    /// Results of entries applied during this tick.
    public var applied: [CommandResult]
    /// Whether this node leads after the tick.
    public var isLeader: Bool
    /// The known leader.
    public var leader: NodeID?
    /// The current term.
    public var term: Term
    /// Members whose health status changed.
    public var statusChanges: [NodeStatusChange]
}

/// The seed's manual-style engine: a Raft node over the key-value state machine and
/// the cluster view, driven by hand (`tick`, `handleMessage`, `takeMessages`). Uses
/// in-memory storage; `NodeRuntime` is the durable, networked runtime.
public final class ReplicationEngine {
    /// This node.
    public let node: NodeInfo
    /// The cluster as this node sees it.
    public private(set) var cluster: Cluster
    private let raft: RaftNode<StateMachine>
    private var pendingResults: [CommandResult] = []

    /// Creates an engine for `node`; it forms a cluster of one until peers are added.
    public init(node: NodeInfo, config: ReplicationConfig = ReplicationConfig()) throws {
        self.node = node
        cluster = try Cluster(localNode: node, config: config.cluster)
        raft = try RaftNode(id: node.id, config: config.raft, stateMachine: StateMachine())
    }

    /// Adds a peer to the cluster and to the Raft configuration.
    public func addPeer(_ peer: NodeInfo) throws {
        _ = try cluster.addNode(peer)
        try raft.addPeer(peer.id)
    }

    /// Starts an election and returns the vote request sent to peers.
    @discardableResult
    public func startElection() throws -> VoteRequest { try raft.startElection() }

    /// `true` if this node leads.
    public var isLeader: Bool { raft.isLeader }

    /// Proposes a command (leader only); returns its log index.
    @discardableResult
    public func propose(_ command: Command) throws -> LogIndex { try raft.propose(command.encoded()) }

    /// Proposes setting `key` to `value`.
    @discardableResult
    public func set(_ key: Key, _ value: [UInt8]) throws -> LogIndex { try propose(.set(key, value)) }

    /// Proposes deleting `key`.
    @discardableResult
    public func delete(_ key: Key) throws -> LogIndex { try propose(.delete(key)) }

    /// The value of `key` in this node's state machine (which may be behind the leader).
    public func get(_ key: Key) -> [UInt8]? { raft.stateMachine.get(key)?.value }

    /// Applies committed entries; returns the results not yet returned.
    public func applyCommitted() throws -> [CommandResult] {
        pendingResults += try raft.applyCommitted()
        defer { pendingResults = [] }
        return pendingResults
    }

    /// Delivers a message from a peer. Vote responses, appends and the rest go to
    /// Raft; any message counts as a heartbeat from its sender for failure detection.
    public func handleMessage(_ message: Message) throws {
        _ = cluster.heartbeat(from: message.from)
        if let raftMessage = message.raftMessage { try raft.step(raftMessage) }
    }

    /// Messages to deliver to peers since the last call.
    public func takeMessages() -> [Message] { raft.takeMessages().map(Message.init) }

    /// Advances time by one tick: Raft timers, failure detection, leader tracking.
    public func tick() throws -> TickResult {
        try raft.tick()
        let applied = try applyCommitted()
        _ = cluster.setLeader(raft.leader, term: raft.term)
        let changes = cluster.checkFailures()
        return TickResult(messages: takeMessages(), applied: applied, isLeader: raft.isLeader, leader: raft.leader,
                          term: raft.term, statusChanges: changes)
    }
}

extension RaftNode where Machine == StateMachine {
    /// The seed's `RaftNode::new(id, config)`: a node over the key-value state machine.
    public convenience init(id: NodeID, config: RaftConfig) throws {
        try self.init(id: id, config: config, stateMachine: StateMachine())
    }

    /// Proposes a key-value command (leader only); returns its log index.
    @discardableResult
    public func propose(_ command: Command) throws -> LogIndex { try propose(command.encoded()) }
}

/// A `RuntimeStorage` in memory: for tests and for embedding without durability.
/// Nothing survives the process.
public final class MemoryRuntimeStorage: RuntimeStorage, @unchecked Sendable {
    private let storage = MemoryStorage()
    private let lock = NSLockShim()

    /// Creates an empty storage.
    public init() {}

    public func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try lock.with {
            try storage.append(entries)
            if let hardState { try storage.setHardState(hardState) }
        }
    }
    public func initialState() throws -> (state: RaftState, conf: ConfState) { try lock.with { try storage.initialState() } }
    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [LogEntry] {
        try lock.with { try storage.entries(from: low, to: high, maxBytes: maxBytes) }
    }
    public func term(at index: LogIndex) throws -> Term { try lock.with { try storage.term(at: index) } }
    public func firstIndex() throws -> LogIndex { try lock.with { try storage.firstIndex() } }
    public func lastIndex() throws -> LogIndex { try lock.with { try storage.lastIndex() } }
    public func snapshot() throws -> Snapshot { try lock.with { try storage.snapshot() } }
    public func append(_ entries: [LogEntry]) throws { try lock.with { try storage.append(entries) } }
    public func setHardState(_ state: RaftState) throws { try lock.with { try storage.setHardState(state) } }
    public func applySnapshot(_ snapshot: Snapshot) throws { try lock.with { try storage.applySnapshot(snapshot) } }
    public func createSnapshot(at index: LogIndex, conf: ConfState, data: [UInt8]) throws -> Snapshot {
        try lock.with { try storage.createSnapshot(at: index, conf: conf, data: data) }
    }
    public func compact(upTo index: LogIndex) throws { try lock.with { try storage.compact(upTo: index) } }
}
