import Foundation
public import AegisKV
public import AegisRaft
import AegisStorage
public import AegisTransport
public import Logging
public import ServiceLifecycle

/// One node of a replicated key-value cluster: a Raft core on its own thread, a
/// durable storage, a transport and the key-value state machine.
///
/// Clients call `execute` (writes, through consensus), `read` (linearizable through
/// ReadIndex unless `stale`), and the membership methods; followers forward writes to
/// the leader and answer once they applied them. Run it as a `Service` (or call
/// `run()`); `stop()` ends it.
public final class NodeRuntime: Service, @unchecked Sendable {
    /// The configuration.
    public let configuration: NodeConfiguration
    private let loop: NodeLoop
    private let queue: InputQueue
    private let transport: any Transport
    private let logger: Logger
    private let statusLock = NSLock()
    private var latestStatus: NodeStatus
    private let finished = FinishSignal()

    /// Opens a node over a storage and a transport. A node whose storage is empty and
    /// whose configuration names `bootstrapVoters` bootstraps a new cluster; one with an
    /// empty storage and no bootstrap voters waits to be added by a leader.
    ///
    /// - Parameter addresses: the known members' addresses (this node's included),
    ///   reported in status; members added later bring theirs in the change.
    public init(configuration: NodeConfiguration, storage: any RuntimeStorage, transport: any Transport,
                addresses: [NodeID: MemberAddress] = [:], logger: Logger) throws {
        self.configuration = configuration
        self.transport = transport
        self.logger = logger
        let (core, machine, snapshotBytes) = try NodeLoop.open(configuration: configuration, storage: storage,
                                                randomSeed: UInt64.random(in: 1...UInt64.max), logger: logger)
        queue = InputQueue(clientLimit: configuration.maxQueuedRequests,
                           messageBatchLimit: configuration.maxQueuedMessageBatches)
        latestStatus = NodeStatus(nodeID: configuration.nodeID)
        let box = StatusBox()
        loop = NodeLoop(config: configuration, core: core, machine: machine, storage: storage, transport: transport,
                        queue: queue, logger: logger, peerAddresses: addresses,
                        snapshotDone: { [queue] in queue.push(.snapshotTaken($0)) }) { status in box.set(status) }
        loop.lastSnapshotBytes = snapshotBytes
        box.owner = self
        // Peer messages go from the transport's receiving thread straight into the
        // loop's queue where the transport allows it; `run()` still drains `inbound`.
        transport.deliverInbound { [queue] batch in
            if case .queued = queue.offer(.messages(batch)) { return true }
            return false
        }
    }

    // MARK: Lifecycle

    /// Runs the node until `stop()` or graceful shutdown: the loop thread, the ticker
    /// and the pump from the transport.
    public func run() async throws {
        let thread = Thread { [loop, finished] in
            loop.run()
            finished.signal()
        }
        thread.name = "aegis-node-\(configuration.nodeID)"
        thread.stackSize = 4 << 20
        thread.start()
        let interval = configuration.tickInterval
        // A cancelled run (another service of the group failed, e.g. a listener could not
        // bind) stops the loop at once: waiting for the loop thread would otherwise never end.
        await withTaskCancellationHandler {
            await runUntilFinished(interval: interval)
        } onCancel: { [queue] in
            queue.push(.stop)
        }
        logger.info("node stopped", metadata: ["node": "\(configuration.nodeID)"])
    }

    private func runUntilFinished(interval: Duration) async {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [transport, queue] in
                    for await batch in transport.inbound {
                        if case .closed = queue.offer(.messages(batch)) { break }
                    }
                }
                group.addTask { [queue] in
                    let clock = ContinuousClock()
                    var next = clock.now
                    while !Task.isCancelled {
                        next = next.advanced(by: interval)
                        try? await clock.sleep(until: next)
                        if !queue.push(.tick) { break }
                    }
                }
                await finished.wait()
                group.cancelAll()
            }
        } onGracefulShutdown: { [queue] in
            queue.push(.stopGracefully)
        }
    }

    /// Asks the node to stop at once; `run()` returns once it has. A leader stops
    /// without handing over (the others elect a new one after an election timeout).
    public func stop() { queue.push(.stop) }

    /// The first step of a stop that clients do not notice: a leader hands leadership to
    /// the most caught-up voter and returns once another node leads (or after
    /// `NodeConfiguration.handoverTimeout`), while this node keeps serving — what its
    /// clients send meanwhile waits for the new leader and is forwarded to it. Call it
    /// before closing the client listeners, then `stopGracefully()` (which, on a node
    /// that stepped down less than a linger ago, still answers forwarded requests until
    /// the linger passed). Returns `true` once another node leads; `false` when this node
    /// did not lead or the handover did not complete in time (`stopGracefully()` then
    /// tries again).
    @discardableResult
    public func handOverLeadership() async -> Bool {
        guard status.role == .leader else { return false }
        let started = ContinuousClock.now
        let done = FinishSignal()
        let outcome = HandoverOutcome()
        let input = RuntimeInput.admin(.transfer(nil, Reply { result in
            outcome.set(result)
            done.signal()
        }))
        if case .queued = queue.offer(input) {
            logger.notice("stopping: handing leadership over before closing anything", metadata: [
                "timeout": "\(configuration.handoverTimeout)"])
        } else {
            return false
        }
        let timeout = configuration.handoverTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await done.wait() }
            group.addTask {
                // Raises the signal itself when the time is up, so that both tasks end.
                try? await Task.sleep(for: timeout)
                done.signal()
            }
            await group.next()
            group.cancelAll()
        }
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
        switch outcome.result {
        case .success:
            logger.notice("stopping: handed leadership over", metadata: ["ms": "\(Int(milliseconds.rounded()))"])
            return true
        case .failure(let error):
            logger.warning("stopping: leadership not handed over before closing", metadata: [
                "reason": "\(error)", "ms": "\(Int(milliseconds.rounded()))"])
        case nil:
            logger.warning("stopping: leadership not handed over before closing", metadata: [
                "reason": "timed out", "ms": "\(Int(milliseconds.rounded()))"])
        }
        return false
    }

    /// Asks the node to stop without losing anything: a leader first hands leadership
    /// to the most caught-up voter (bounded by `NodeConfiguration.handoverTimeout`) and
    /// answers what followers forwarded meanwhile; a follower stops at once. `run()`
    /// returns once it has stopped. Graceful shutdown of the service does this.
    public func stopGracefully() { queue.push(.stopGracefully) }

    // MARK: Client API

    /// Runs a command through consensus and returns its result once this node applied
    /// it. On a follower the command is forwarded to the leader.
    public func execute(_ command: Command) async throws -> CommandResult {
        try await execute(encoded: command.encoded())
    }

    /// Runs a command given as its encoding (`Command.encoded()`), for a caller that
    /// holds the bytes already (a peer's active-active batch: `ActiveActiveFrame.mergeCommand`).
    /// The bytes are decoded where the entry is applied, as strictly as any entry's:
    /// malformed ones get `KVError.malformedCommand` and change nothing.
    public func execute(encoded data: [UInt8]) async throws -> CommandResult {
        try await withCheckedThrowingContinuation { continuation in
            if let refusal = submit(.execute(data, { continuation.resume(with: $0) })) {
                continuation.resume(throwing: refusal)
            }
        }
    }

    /// Runs several commands in order (one client's pipeline): they are proposed
    /// together, in this order, and the results come back in the same order.
    public func execute(batch commands: [Command]) async -> [Result<CommandResult, ReplicationError>] {
        guard !commands.isEmpty else { return [] }
        let collector = BatchCollector(count: commands.count)
        return await withCheckedContinuation { continuation in
            collector.onComplete = { continuation.resume(returning: $0) }
            let input = RuntimeInput.executeBatch(commands.map { $0.encoded() }, { k, result in collector.set(k, result) })
            if let refusal = submit(input) { for k in commands.indices { collector.set(k, .failure(refusal)) } }
        }
    }

    /// Reads keys: linearizable (a ReadIndex round) by default, or this node's local
    /// state, possibly behind, with `stale`.
    public func read(_ keys: [Key], stale: Bool = false) async throws -> [KeyValue?] {
        let outcome = try await readOutcome(keys: keys, kind: .values, stale: stale)
        if case .values(let values) = outcome { return values }
        return []
    }

    /// The number of keys (linearizable unless `stale`).
    public func count(stale: Bool = false) async throws -> Int {
        let outcome = try await readOutcome(keys: [], kind: .count, stale: stale)
        if case .count(let n) = outcome { return n }
        return 0
    }

    /// This node's state machine digest (SHA-256 of its canonical snapshot, in
    /// hexadecimal) and the index it was taken at. Local, without ReadIndex: for
    /// comparing replicas once they applied the same entries.
    public func digest() async throws -> (appliedIndex: LogIndex, digest: String) {
        let outcome = try await readOutcome(keys: [], kind: .digest, stale: true)
        if case .digest(let index, let hex) = outcome { return (index, hex) }
        return (0, "")
    }

    /// The committed entries after `index` (at most `maxCount` and about `maxBytes`,
    /// at least one when any), read from this node's log without a Raft round: for the
    /// change stream's shipper on the leader. Entries compacted away are not returned
    /// (`firstIndex` says where the log starts).
    public func committedEntries(after index: LogIndex, maxCount: Int, maxBytes: Int) async throws -> CommittedEntries {
        let outcome = try await readOutcome(keys: [], kind: .log(after: index, maxCount: maxCount, maxBytes: maxBytes),
                                            stale: true)
        if case .log(let read) = outcome { return read }
        return CommittedEntries(entries: [], commitIndex: 0, firstIndex: 0)
    }

    /// The active-active batch a peer gets after `index`: the current states of the
    /// keys this cluster's clients wrote in the committed entries after it (at most
    /// `maxCount` entries and about `maxBytes`), never beyond what this node applied.
    /// Local, without a Raft round: for the shipper on the leader. `peer` (the receiving
    /// cluster) lets a star or tree forward other neighbours' changes to it.
    public func activeActiveBatch(after index: LogIndex, source: String, sourceTime: UInt64, maxCount: Int,
                                  maxBytes: Int, peer: String? = nil) async throws -> ActiveActiveRead {
        let kind = ReadRequest.Kind.activeActive(after: index, maxCount: maxCount, maxBytes: maxBytes, source: source,
                                                 sourceTime: sourceTime, peer: peer)
        let outcome = try await readOutcome(keys: [], kind: kind, stale: true)
        if case .activeActive(let read) = outcome { return read }
        throw ReplicationError.rejected("no active-active batch was read")
    }

    /// A page of this node's whole active-active state for a peer catching up (see
    /// `StateMachine.activeActiveCatchUpPage`): the states of the keys after `key`,
    /// at most `maxStates` and about `maxBytes`. Local, without a Raft round.
    public func activeActiveCatchUpPage(after key: Key?, source: String, sourceTime: UInt64, maxStates: Int,
                                        maxBytes: Int) async throws -> ActiveActiveCatchUpRead {
        let kind = ReadRequest.Kind.activeActivePage(after: key, maxStates: maxStates, maxBytes: maxBytes, source: source,
                                                     sourceTime: sourceTime)
        let outcome = try await readOutcome(keys: [], kind: kind, stale: true)
        if case .activeActivePage(let read) = outcome { return read }
        throw ReplicationError.rejected("no active-active catch-up page was read")
    }

    /// The active-active conflict state (ActiveActiveConflictReport): the strategies, the
    /// open manual conflicts, the newest `limit` audit entries (of `key` when given) and
    /// the key's siblings. Linearizable unless `stale`.
    public func activeActiveConflictReport(key: Key?, limit: Int, stale: Bool = false) async throws
        -> ActiveActiveConflictReport {
        let outcome = try await readOutcome(keys: key.map { [$0] } ?? [], kind: .activeActiveConflicts(key: key, limit: limit),
                                            stale: stale)
        if case .activeActiveConflicts(let report) = outcome { return report }
        throw ReplicationError.rejected("no active-active conflict report was read")
    }

    private func readOutcome(keys: [Key], kind: ReadRequest.Kind, stale: Bool) async throws -> ReadOutcome {
        try await withCheckedThrowingContinuation { continuation in
            let request = ReadRequest(keys: keys, kind: kind, continuation: Reply(continuation))
            if let refusal = submit(.read(request, stale: stale)) { continuation.resume(throwing: refusal) }
        }
    }

    /// The node's state as of its last batch.
    public var status: NodeStatus {
        statusLock.lock()
        defer { statusLock.unlock() }
        return latestStatus
    }

    fileprivate func setStatus(_ status: NodeStatus) {
        statusLock.lock()
        latestStatus = status
        statusLock.unlock()
    }

    // MARK: Membership

    /// Adds a member (as a learner by default) at `address`; the address travels with
    /// the change to every node, whose transports learn it. Leader only.
    public func addMember(_ id: NodeID, address: MemberAddress, asLearner: Bool = true) async throws {
        guard PeerAddress(parsing: address.peer) != nil else {
            throw ReplicationError.rejected("'\(address.peer)' is not a host:port address")
        }
        let change = ConfChange([ConfChangeSingle(asLearner ? .addLearner : .addVoter, id)],
                                context: Array(address.description.utf8))
        try await admin { .confChange(change, $0) }
    }

    /// Promotes a caught-up learner to voter. Leader only.
    public func promoteMember(_ id: NodeID) async throws {
        try await admin { .confChange(ConfChange([ConfChangeSingle(.addVoter, id)]), $0) }
    }

    /// Removes a member (the leader itself included: it steps down once applied).
    public func removeMember(_ id: NodeID) async throws {
        try await admin { .confChange(ConfChange([ConfChangeSingle(.removeNode, id)]), $0) }
    }

    /// Hands leadership to `target` (or the most caught-up voter). Returns once the
    /// target leads. Leader only.
    public func transferLeadership(to target: NodeID? = nil) async throws {
        try await admin { .transfer(target, $0) }
    }

    /// Starts a snapshot of the state at the applied index now, whatever the log's size
    /// (skipped while one is being taken); it is written off the loop and the log is
    /// compacted behind it as usual. Returns once it is started, not written.
    public func requestSnapshot() async throws {
        try await admin { .snapshot($0) }
    }

    private func admin(_ make: (Reply<Void>) -> AdminRequest) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if let refusal = submit(.admin(make(Reply(continuation)))) { continuation.resume(throwing: refusal) }
        }
    }

    /// Queues a client input; the error to answer with when it was not queued.
    private func submit(_ input: RuntimeInput) -> ReplicationError? {
        switch queue.offer(input) {
        case .queued: return nil
        case .closed: return loop.stoppedReason ?? .shuttingDown
        case .full: return .overloaded
        }
    }
}

/// Hands status updates from the loop to the runtime without a retain cycle.
private final class StatusBox: @unchecked Sendable {
    weak var owner: NodeRuntime?
    func set(_ status: NodeStatus) { owner?.setStatus(status) }
}

/// The answer to `handOverLeadership`'s transfer, set once from the loop thread.
private final class HandoverOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<Void, any Error>?

    func set(_ result: Result<Void, any Error>) {
        lock.lock()
        if value == nil { value = result }
        lock.unlock()
    }

    var result: Result<Void, any Error>? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// A one-shot signal a thread raises and an async task awaits.
final class FinishSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func signal() {
        lock.lock()
        done = true
        let w = waiters
        waiters = []
        lock.unlock()
        for c in w { c.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if done {
                lock.unlock()
                c.resume()
            } else {
                waiters.append(c)
                lock.unlock()
            }
        }
    }
}

/// Gathers the results of a batch and delivers them once all arrived.
final class BatchCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<CommandResult, ReplicationError>?]
    private var remaining: Int
    var onComplete: (@Sendable ([Result<CommandResult, ReplicationError>]) -> Void)?

    init(count: Int) {
        results = Array(repeating: nil, count: count)
        remaining = count
    }

    func set(_ k: Int, _ result: Result<CommandResult, any Error>) {
        lock.lock()
        guard k < results.count, results[k] == nil else {
            lock.unlock()
            return
        }
        results[k] = result.mapError { ($0 as? ReplicationError) ?? .rejected("\($0)") }
        remaining -= 1
        let done = remaining == 0
        let final = done ? results.compactMap { $0 } : []
        let callback = done ? onComplete : nil
        lock.unlock()
        callback?(final)
    }
}
