/// The seed's convenience API: a Raft node with in-memory storage and a state machine,
/// driven by hand. Every call handles the resulting `Ready` at once (persist to the
/// in-memory storage, queue messages, apply committed entries), so callers only
/// deliver messages (`step`, `handleVoteResponse`) and collect them (`takeMessages`).
///
/// For production use, drive `RaftCore` from a runtime with durable storage instead.
public final class RaftNode<Machine: ReplicatedStateMachine> {
    /// The consensus core.
    public private(set) var core: RaftCore
    /// The node's storage.
    public let storage: MemoryStorage
    /// The application state machine.
    public private(set) var stateMachine: Machine
    private var outbox: [RaftMessage] = []
    private var results: [Machine.Output] = []
    private var readStates: [ReadState] = []

    /// Creates a node that forms a cluster of one until peers are added.
    public init(id: NodeID, config: RaftConfig, stateMachine: Machine) throws {
        storage = MemoryStorage(conf: ConfState(voters: [id]))
        core = try RaftCore(id: id, config: config, storage: storage)
        self.stateMachine = stateMachine
    }

    /// This node's identifier.
    public var id: NodeID { core.id }
    /// `true` if this node leads.
    public var isLeader: Bool { core.isLeader }
    /// The current term.
    public var term: Term { core.term }
    /// The known leader.
    public var leader: NodeID? { core.leader }

    /// Adds a voter. Before the cluster has a log this edits the initial configuration;
    /// afterwards the leader proposes a configuration change (followers throw
    /// `RaftError.notLeader`).
    public func addPeer(_ peer: NodeID) throws {
        if try storage.lastIndex() == 0 && core.term == 0 {
            var conf = core.confState
            conf.voters.insert(peer)
            storage.setConfState(conf)
            core = try RaftCore(id: core.id, config: core.config, storage: storage)
            return
        }
        try core.proposeConfChange(ConfChange([ConfChangeSingle(.addVoter, peer)]))
        try handleReady()
    }

    /// Starts an election now (no pre-vote) and returns the vote request sent to peers.
    @discardableResult
    public func startElection() throws -> VoteRequest {
        core.campaign(preVote: false, transfer: false)
        let request = VoteRequest(term: core.term, candidateID: core.id, lastLogIndex: try core.log.lastIndex(),
                                  lastLogTerm: try core.log.lastTerm())
        try handleReady()
        return request
    }

    /// Delivers a vote answer. Returns `true` if this node is now the leader.
    @discardableResult
    public func handleVoteResponse(_ response: VoteResponse) throws -> Bool {
        try step(RaftMessage(from: response.voterID, to: core.id, payload: .voteResponse(response)))
        return core.isLeader
    }

    /// Proposes a command (leader only) and returns its log index.
    @discardableResult
    public func propose(_ data: [UInt8]) throws -> LogIndex {
        let proposal = try core.propose(data)
        try handleReady()
        switch proposal {
        case .appended(let index, _): return index
        case .forwarded(let to): throw RaftError.notLeader(leader: to)
        }
    }

    /// Delivers a message from a peer.
    public func step(_ message: RaftMessage) throws {
        try core.step(message)
        try handleReady()
    }

    /// Advances logical time by one tick.
    public func tick() throws {
        core.tick()
        try handleReady()
    }

    /// Asks for a linearizable read point; the answer appears in `takeReadStates()`.
    public func readIndex(context: UInt64) throws {
        try core.readIndex(context: context)
        try handleReady()
    }

    /// The messages to deliver to peers since the last call.
    public func takeMessages() -> [RaftMessage] {
        defer { outbox = [] }
        return outbox
    }

    /// Reads confirmed since the last call.
    public func takeReadStates() -> [ReadState] {
        defer { readStates = [] }
        return readStates
    }

    /// Applies committed entries and returns the results of those applied since the
    /// last call, in log order.
    public func applyCommitted() throws -> [Machine.Output] {
        try handleReady()
        defer { results = [] }
        return results
    }

    private func handleReady() throws {
        try ReadyExecutor().run(RaftNodeShell(self))
    }

    fileprivate func install(_ snapshot: Snapshot) throws {
        try storage.applySnapshot(snapshot)
        try stateMachine.restore(from: snapshot)
    }

    fileprivate func persist(hardState: RaftState?, entries: [LogEntry]) throws {
        try storage.append(entries)
        if let hardState { try storage.setHardState(hardState) }
    }

    fileprivate func queue(_ messages: [RaftMessage]) { outbox.append(contentsOf: messages) }

    fileprivate func apply(_ entries: [LogEntry]) {
        for entry in entries where entry.index > stateMachine.appliedIndex {
            results.append(stateMachine.apply(entry))
        }
    }

    fileprivate func accept(_ states: [ReadState]) { readStates.append(contentsOf: states) }

    fileprivate func nextReady() throws -> Ready? { core.hasReady ? try core.ready() : nil }

    fileprivate func advance(_ ready: Ready) { core.advance(ready) }

    fileprivate func snapshotIfAsked(_ ready: Ready) throws {
        guard ready.shouldSnapshot else { return }
        let index = core.appliedIndex
        try storage.createSnapshot(at: index, conf: core.confState, data: try stateMachine.snapshotData())
        let upTo = core.compactionIndex(afterSnapshotAt: index)
        if upTo > 0 { try storage.compact(upTo: upTo) }
    }
}

/// `RaftNode` as a `ReadyShell`: the in-memory storage is synchronous, reads are handed
/// to the caller (`takeReadStates`), so the shell is a thin adapter.
private final class RaftNodeShell<Machine: ReplicatedStateMachine>: ReadyShell {
    let node: RaftNode<Machine>
    init(_ node: RaftNode<Machine>) { self.node = node }
    func nextReady() throws -> Ready? { try node.nextReady() }
    func send(_ messages: [RaftMessage]) { node.queue(messages) }
    func installSnapshot(_ snapshot: Snapshot) throws { try node.install(snapshot) }
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try node.persist(hardState: hardState, entries: entries)
    }
    func apply(_ entries: [LogEntry]) throws { node.apply(entries) }
    func accept(_ readStates: [ReadState]) { node.accept(readStates) }
    func softStateChanged(_ state: SoftState) {}
    func advance(_ ready: Ready) { node.advance(ready) }
    func advanced(_ ready: Ready) throws { try node.snapshotIfAsked(ready) }
}
