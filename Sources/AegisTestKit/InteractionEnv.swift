public import AegisRaft

/// A scripted test harness in the style of etcd-io/raft's interaction tests: nodes
/// with in-memory storage, messages held in a pending list until delivered, and every
/// delivered message returned as a canonical one-line description, so tests can state
/// exactly which messages a step produces.
public final class InteractionEnv {
    /// The nodes, by identifier.
    public private(set) var cores: [NodeID: RaftCore] = [:]
    /// Their storages.
    public private(set) var storages: [NodeID: MemoryStorage] = [:]
    /// Messages produced and not yet delivered, in order.
    public private(set) var pending: [RaftMessage] = []
    /// Entries each node applied, in order.
    public private(set) var applied: [NodeID: [LogEntry]] = [:]
    /// Read states each node received.
    public private(set) var readStates: [NodeID: [ReadState]] = [:]
    /// Directed links that drop messages.
    public var cut: Set<[NodeID]> = []
    /// All node identifiers, sorted.
    public let ids: [NodeID]

    /// Creates `count` nodes `n1…nN` that form one cluster (pre-vote and check-quorum
    /// as in `config`).
    public init(count: Int, config: RaftConfig = RaftConfig(), voters: Int? = nil) throws {
        var names: [NodeID] = []
        for k in 1...count { names.append(NodeID("n\(k)")) }
        ids = names
        let conf = ConfState(voters: Set(names.prefix(voters ?? count)), learners: Set(names.dropFirst(voters ?? count)))
        for (k, id) in names.enumerated() {
            let storage = MemoryStorage(conf: conf)
            storages[id] = storage
            var c = config
            c.randomSeed = UInt64(k + 1)
            cores[id] = try RaftCore(id: id, config: c, storage: storage)
            applied[id] = []
        }
    }

    /// Creates a node with a given storage (for custom logs), replacing any existing.
    public func replace(_ id: NodeID, storage: MemoryStorage, config: RaftConfig = RaftConfig()) throws {
        storages[id] = storage
        cores[id] = try RaftCore(id: id, config: config, storage: storage)
    }

    /// Read access to a node.
    public subscript(_ id: NodeID) -> RaftCore? { cores[id] }

    /// Mutates a node and then processes its `Ready`. When `body` throws, the node
    /// keeps what it did (as a shell keeps its core after `step` throws, for example
    /// a core that found it diverged) and the error is rethrown.
    public func with(_ id: NodeID, _ body: (inout RaftCore) throws -> Void) throws {
        guard var core = cores[id] else { throw RaftError.invalidMessage("no node \(id)") }
        do {
            try body(&core)
        } catch {
            cores[id] = core
            throw error
        }
        cores[id] = core
        try process(id)
    }

    /// Ticks a node `count` times.
    public func tick(_ id: NodeID, _ count: Int = 1) throws {
        for _ in 0..<count { try with(id) { $0.tick() } }
    }

    /// Makes a node campaign now.
    public func campaign(_ id: NodeID) throws { try with(id) { $0.campaign() } }

    /// Proposes data on a node.
    @discardableResult
    public func propose(_ id: NodeID, _ text: String) throws -> Proposal {
        var result: Proposal = .forwarded(to: id)
        try with(id) { result = try $0.propose(Array(text.utf8)) }
        return result
    }

    /// Handles a node's `Ready`s through `ReadyExecutor`: persist to its storage,
    /// queue messages, record applied entries and read states.
    public func process(_ id: NodeID) throws {
        guard let core = cores[id], let storage = storages[id] else { return }
        let shell = InteractionShell(core: core, storage: storage)
        defer {
            cores[id] = shell.core
            pending.append(contentsOf: shell.sent)
            applied[id, default: []].append(contentsOf: shell.applied)
            readStates[id, default: []].append(contentsOf: shell.readStates)
        }
        try ReadyExecutor().run(shell)
    }

    /// Delivers pending messages (all, or those matching `filter`) and returns their
    /// descriptions. Messages produced by the deliveries stay pending.
    @discardableResult
    public func deliver(where filter: (RaftMessage) -> Bool = { _ in true }) throws -> [String] {
        let batch = pending.filter(filter)
        pending.removeAll(where: filter)
        var lines: [String] = []
        for m in batch {
            if cut.contains([m.from, m.to]) {
                lines.append(Self.describe(m) + " DROPPED")
                continue
            }
            lines.append(Self.describe(m))
            guard cores[m.to] != nil else { continue }
            try with(m.to) { try $0.step(m) }
        }
        return lines
    }

    /// Drops pending messages matching `filter`; returns their descriptions.
    @discardableResult
    public func drop(where filter: (RaftMessage) -> Bool) -> [String] {
        let dropped = pending.filter(filter)
        pending.removeAll(where: filter)
        return dropped.map(Self.describe)
    }

    /// Delivers messages until none are left (at most `limit` rounds).
    public func stabilize(limit: Int = 100) throws {
        var rounds = 0
        while !pending.isEmpty && rounds < limit {
            try deliver()
            rounds += 1
        }
    }

    /// Cuts both directions between `a` and every other node.
    public func isolate(_ a: NodeID) {
        for b in ids where b != a {
            cut.insert([a, b])
            cut.insert([b, a])
        }
    }

    /// Restores every link.
    public func heal() { cut = [] }

    /// A canonical one-line description of a message.
    public static func describe(_ m: RaftMessage) -> String {
        let head = "\(m.from)->\(m.to) \(m.kindName) term=\(m.term)"
        switch m.payload {
        case .vote(let r): return head + " last=(\(r.lastLogIndex),\(r.lastLogTerm))"
        case .voteResponse(let r): return head + (r.voteGranted ? " granted" : " rejected")
        case .appendEntries(let r):
            let ents = r.entries.map { "\($0.index)/\($0.term)" }.joined(separator: ",")
            return head + " prev=(\(r.prevLogIndex),\(r.prevLogTerm)) commit=\(r.leaderCommit) entries=[\(ents)]"
        case .appendEntriesResponse(let r):
            return head + (r.success ? " match=\(r.matchIndex)" : " reject=\(r.rejectedIndex) hint=(\(r.hintIndex),\(r.hintTerm))")
        case .heartbeat(let r): return head + " commit=\(r.commitIndex)" + (r.context != 0 ? " ctx=\(r.context)" : "")
        case .heartbeatResponse(let r):
            return head + (r.context != 0 ? " ctx=\(r.context)" : "") + (r.requestsAppend ? " wants-append last=\(r.lastIndex)" : "")
        case .installSnapshot(let r):
            return head + " snap=(\(r.metadata.index),\(r.metadata.term)) offset=\(r.offset) len=\(r.data.count)\(r.done ? " done" : "")"
        case .installSnapshotResponse(let r):
            return head + " snap=\(r.snapshotIndex) next=\(r.nextOffset)\(r.done ? " done" : "")\(r.rejected ? " rejected" : "")"
        case .timeoutNow: return head
        case .readIndex(_, let ctx): return head + " ctx=\(ctx)"
        case .readIndexResponse(_, let ctx, let index): return head + " ctx=\(ctx) index=\(index)"
        case .forwardedProposal(_, let entries): return head + " entries=\(entries.count)"
        }
    }
}

/// One harness node as a `ReadyShell`. Its "state machine" for snapshots is a payload
/// that depends on the index, long enough to need several chunks with a small chunk size.
private final class InteractionShell: ReadyShell {
    var core: RaftCore
    let storage: MemoryStorage
    var sent: [RaftMessage] = []
    var applied: [LogEntry] = []
    var readStates: [ReadState] = []

    init(core: RaftCore, storage: MemoryStorage) {
        self.core = core
        self.storage = storage
    }

    func nextReady() throws -> Ready? { core.hasReady ? try core.ready() : nil }
    func send(_ messages: [RaftMessage]) { sent.append(contentsOf: messages) }
    func installSnapshot(_ snapshot: Snapshot) throws { try storage.applySnapshot(snapshot) }
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try storage.append(entries)
        if let hardState { try storage.setHardState(hardState) }
    }
    func apply(_ entries: [LogEntry]) throws { applied.append(contentsOf: entries) }
    func accept(_ readStates: [ReadState]) { self.readStates.append(contentsOf: readStates) }
    func softStateChanged(_ state: SoftState) {}
    func advance(_ ready: Ready) { core.advance(ready) }
    func advanced(_ ready: Ready) throws {
        guard ready.shouldSnapshot else { return }
        let index = core.appliedIndex
        try storage.createSnapshot(at: index, conf: core.confState,
                                   data: Array(repeating: UInt8(truncatingIfNeeded: index), count: 100))
        let upTo = core.compactionIndex(afterSnapshotAt: index)
        if upTo > 0 { try storage.compact(upTo: upTo) }
    }
}
