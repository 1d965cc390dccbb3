public import AegisKV
public import AegisRaft
public import AegisTransport
public import Logging

/// The production node loop without its thread: the same `NodeLoop` that
/// `NodeRuntime` runs (core, storage, state machine, waiting clients, outbound
/// messages, `Ready` handling), driven by hand. Time (ticks and the wall clock), the
/// network (the `Transport`) and the file system (under the storage) are injected.
///
/// The deterministic simulator runs many of these in one thread over `DiskStorage` on a
/// simulated file system; each call handles its input and then every `Ready` it caused,
/// exactly as the runtime does after each batch of inputs. Not thread-safe: call from
/// one thread.
public final class ReplicaNode {
    let loop: NodeLoop

    /// Opens a node over `storage` (bootstrapping it when empty and the configuration
    /// names founding voters, as `NodeRuntime` does).
    ///
    /// - Parameters:
    ///   - clock: wall-clock milliseconds (stamped on proposed entries).
    ///   - randomSeed: seeds the core's randomised election timeouts.
    ///   - mutation: an ordering bug to inject, for mutation tests only.
    ///   - compacted: called after each compaction of the log behind a snapshot (in
    ///     production, the allocator's free pages are handed back to the system then).
    public init(configuration: NodeConfiguration, storage: any RuntimeStorage, transport: any Transport,
                addresses: [NodeID: MemberAddress] = [:], logger: Logger,
                clock: @escaping @Sendable () -> UInt64, randomSeed: UInt64,
                snapshotRunner: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void,
                mutation: ReadyMutation = .none, compacted: @escaping @Sendable () -> Void = {}) throws {
        let (core, machine, snapshotBytes) = try NodeLoop.open(configuration: configuration, storage: storage,
                                                randomSeed: randomSeed, logger: logger)
        let finished = FinishedSnapshots()
        self.finished = finished
        loop = NodeLoop(config: configuration, core: core, machine: machine, storage: storage, transport: transport,
                        queue: InputQueue(), logger: logger, peerAddresses: addresses, clock: clock,
                        executor: ReadyExecutor(mutation: mutation), snapshotRunner: snapshotRunner,
                        snapshotDone: { finished.add($0) }, compacted: compacted) { _ in }
        loop.lastSnapshotBytes = snapshotBytes
    }

    private let finished: FinishedSnapshots

    /// Hands the loop the snapshots whose work (given to the `snapshotRunner`) has run:
    /// it compacts the log behind each. Call after running such work.
    public func collectSnapshots() {
        for outcome in finished.takeAll() { run(.snapshotTaken(outcome)) }
    }

    private func run(_ input: RuntimeInput) {
        guard loop.failure == nil else {
            loop.reject(input, loop.failure ?? .shuttingDown)
            return
        }
        loop.handle(input)
        if loop.failure == nil { loop.processReadies() }
        if let failure = loop.failure { loop.failEverything(failure) }
    }

    /// `true` while a snapshot handed to the `snapshotRunner` has not been collected.
    public var snapshotInFlight: Bool { loop.snapshotInFlight != nil }

    /// Delivers messages from peers.
    public func deliver(_ messages: [Message]) { run(.messages(messages)) }

    /// Advances logical time by one tick.
    public func tick() { run(.tick) }

    /// Proposes an encoded command (forwarded to the leader from a follower); `reply`
    /// is called once, with the result after this node applied it, or the failure.
    public func execute(_ data: [UInt8], reply: @escaping @Sendable (Result<CommandResult, any Error>) -> Void) {
        run(.execute(data, reply))
    }

    /// Reads keys, linearizably (ReadIndex) unless `stale`.
    public func read(_ keys: [Key], stale: Bool = false,
                     reply: @escaping @Sendable (Result<[KeyValue?], any Error>) -> Void) {
        let request = ReadRequest(keys: keys, kind: .values, continuation: Reply { outcome in
            reply(outcome.map { if case .values(let values) = $0 { return values } else { return [] } })
        })
        run(.read(request, stale: stale))
    }

    /// Proposes a membership change (leader only); `reply` once it is applied here.
    public func changeMembership(_ change: ConfChange, reply: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        run(.admin(.confChange(change, Reply(reply))))
    }

    /// Hands leadership to `target`; `reply` once it leads.
    public func transferLeadership(to target: NodeID?, reply: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        run(.admin(.transfer(target, Reply(reply))))
    }

    /// Fails every waiting request with `ReplicationError.shuttingDown` (the node is
    /// being powered off).
    public func stop() { loop.failEverything(.shuttingDown) }

    /// Starts a graceful stop (see `NodeRuntime.stopGracefully()`): a leader hands
    /// leadership over first. Keep delivering messages and ticks until
    /// `gracefulStopFinished`, then `stop()`.
    public func stopGracefully() { run(.stopGracefully) }

    /// `true` once a graceful stop may end (the handover completed, or timed out).
    public var gracefulStopFinished: Bool { loop.handover != nil && loop.handoverFinished }

    /// A copy of the core (role, term, log), for checks.
    public var core: RaftCore { loop.core }
    /// The index of the last entry applied to the state machine.
    public var appliedIndex: LogIndex { loop.machine.appliedIndex }
    /// This node's state machine digest (`StateMachine.digestHex()`), for checks that
    /// replicas at the same applied index agree.
    public var stateDigest: String { loop.machine.digestHex() }
    /// The record of `key` in this node's state machine (local, possibly behind).
    public func localValue(_ key: Key) -> KeyValue? { loop.machine.get(key) }
    /// Why the node stopped serving (a storage failure, a divergence), if it has.
    public var failure: ReplicationError? { loop.failure }
    /// Called with every entry this node applies, in log order, after the state
    /// machine applied it (the simulator's safety checks).
    public var onApply: ((LogEntry) -> Void)? {
        get { loop.applyObserver }
        set { loop.applyObserver = newValue }
    }
    /// `true` while a node created empty to join has not been added yet.
    public var awaitingAdd: Bool { loop.awaitingAdd }
}

/// Snapshots finished by the runner, waiting for `ReplicaNode.collectSnapshots`.
private final class FinishedSnapshots: @unchecked Sendable {
    private let lock = NSLockShim()
    private var outcomes: [SnapshotOutcome] = []
    func add(_ outcome: SnapshotOutcome) { lock.with { outcomes.append(outcome) } }
    func takeAll() -> [SnapshotOutcome] { lock.with { defer { outcomes = [] }; return outcomes } }
}
