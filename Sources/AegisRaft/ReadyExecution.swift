/// What a shell does with one `Ready`, step by step. The order of the steps is not the
/// shell's business: ``ReadyExecutor`` calls them in the order `Ready` documents, and is
/// the only place in Aegis that knows it. The production node loop, the simulators, the
/// seed's `RaftNode` and the core benchmark are all shells.
///
/// A shell owns its `RaftCore`; the executor reaches it only through ``nextReady()``
/// and ``advance(_:)``, so a shell that is a class never has its core borrowed across a
/// callback.
public protocol ReadyShell: AnyObject {
    /// The core's next `Ready`, or `nil` when it has none (`RaftCore.hasReady` is false).
    func nextReady() throws -> Ready?
    /// Sends messages to peers (never blocks on the network).
    func send(_ messages: [RaftMessage])
    /// Persists a snapshot from the leader and installs it into the state machine.
    func installSnapshot(_ snapshot: Snapshot) throws
    /// Appends `entries` (replacing any conflicting suffix) and records `hardState`;
    /// with `sync`, returns only once both are durable.
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws
    /// Applies committed entries, in order (and answers the clients waiting on them).
    func apply(_ entries: [LogEntry]) throws
    /// Takes confirmed read points (served once their index is applied).
    func accept(_ readStates: [ReadState])
    /// The role or leader changed.
    func softStateChanged(_ state: SoftState)
    /// Confirms the `Ready` to the core (`RaftCore.advance(_:)`).
    func advance(_ ready: Ready)
    /// Work after the core advanced: serve reads whose index is now applied, and take
    /// the snapshot the `Ready` asked for (`Ready.shouldSnapshot`).
    func advanced(_ ready: Ready) throws
}

/// A deliberate ordering bug, for mutation tests: the simulator must catch each one.
public enum ReadyMutation: String, Sendable, Hashable, CaseIterable {
    /// The documented order.
    case none
    /// Every message (a follower's append acknowledgement, a vote) leaves before the
    /// node's own write is durable.
    case sendBeforePersist = "send-before-persist"
    /// Committed entries are applied and the `Ready` is confirmed to the core (which
    /// then counts a leader's own entries towards a quorum) before the write is durable.
    case applyBeforePersist = "apply-before-persist"
}

/// The one implementation of the `Ready` ordering (see `Ready`):
///
/// 1. a leader's appends leave at once (``begin(_:shell:)``, the allowed reordering);
///    committed entries this node had made durable before this `Ready` are applied at
///    once, and the read states taken (``begin(_:shell:)``, the second allowed
///    reordering: see `Ready.durableCommittedCount`);
/// 2. persist: the snapshot, then entries and hard state (fsynced if `mustSync`);
/// 3. send every other message;
/// 4. apply the other committed entries, take read states (if not taken in step 1),
///    report a role change;
/// 5. advance the core, then serve reads and snapshot.
///
/// A shell that writes synchronously calls ``run(_:)``. A shell whose disk write
/// completes later (the simulator's disk latency) calls ``begin(_:shell:)`` when it
/// takes the `Ready` and ``finish(_:shell:)`` when the write is done, and takes no
/// other `Ready` in between.
public struct ReadyExecutor: Sendable {
    /// The ordering bug to inject (mutation tests only).
    public var mutation: ReadyMutation

    /// Creates an executor; `mutation` is for tests that show the simulator catches a
    /// misordering.
    public init(mutation: ReadyMutation = .none) {
        self.mutation = mutation
    }

    /// Handles every pending `Ready` of the shell's core, each to completion.
    @inlinable
    public func run<Shell: ReadyShell>(_ shell: Shell) throws {
        while let rd = try shell.nextReady() {
            try begin(rd, shell: shell)
            try finish(rd, shell: shell)
        }
    }

    /// Step 1: sends what may leave before the node's own write (a leader's appends),
    /// then applies the committed entries that were durable here before this `Ready`
    /// and takes its read states when nothing else is left to apply — so the clients
    /// waiting on them are answered without waiting for this `Ready`'s `fdatasync`.
    /// Throws what `ReadyShell.apply(_:)` throws; the `Ready` is then not advanced.
    @inlinable
    public func begin<Shell: ReadyShell>(_ rd: Ready, shell: Shell) throws {
        sendEarly(rd, shell: shell)
        guard mutation != .applyBeforePersist else { return }  // it applies everything in `finish`
        let durable = rd.durableCommittedCount
        if durable == rd.committedEntries.count {
            // The usual case (a leader's committed entries were durable before): no copy.
            if durable > 0 { try shell.apply(rd.committedEntries) }
            if !rd.readStates.isEmpty { shell.accept(rd.readStates) }
        } else if durable > 0 {
            try shell.apply(Array(rd.committedEntries[..<durable]))
        }
    }

    @inlinable
    func sendEarly<Shell: ReadyShell>(_ rd: Ready, shell: Shell) {
        if mutation == .sendBeforePersist {
            if !rd.messages.isEmpty { shell.send(rd.messages) }
            return
        }
        switch Self.leaderAppends(in: rd.messages) {
        case 0: return
        case rd.messages.count: shell.send(rd.messages)
        default: shell.send(rd.messages.filter(\.isLeaderAppend))
        }
    }

    /// How many of `messages` are a leader's appends (counted without allocating: most
    /// `Ready`s hold only appends, or none).
    @inlinable
    static func leaderAppends(in messages: [RaftMessage]) -> Int {
        var count = 0
        for m in messages where m.isLeaderAppend { count += 1 }
        return count
    }

    /// Steps 2 to 5, once the write may start (after ``begin(_:shell:)``, which must
    /// have run for this `Ready`). If a step throws, the `Ready` is not advanced: the
    /// core hands its persistent part out again.
    @inlinable
    public func finish<Shell: ReadyShell>(_ rd: Ready, shell: Shell) throws {
        if mutation == .applyBeforePersist {
            try applyAndAdvance(rd, from: 0, takeReadStates: true, shell: shell)
            try persist(rd, shell: shell)
            sendRest(rd, shell: shell)
            try shell.advanced(rd)
            return
        }
        try persist(rd, shell: shell)
        sendRest(rd, shell: shell)
        let durable = rd.durableCommittedCount
        try applyAndAdvance(rd, from: durable, takeReadStates: durable < rd.committedEntries.count, shell: shell)
        try shell.advanced(rd)
    }

    @inlinable
    func persist<Shell: ReadyShell>(_ rd: Ready, shell: Shell) throws {
        if let snapshot = rd.snapshot { try shell.installSnapshot(snapshot) }
        if !rd.entries.isEmpty || rd.hardState != nil {
            try shell.persist(hardState: rd.hardState, entries: rd.entries, sync: rd.mustSync)
        }
    }

    @inlinable
    func sendRest<Shell: ReadyShell>(_ rd: Ready, shell: Shell) {
        guard mutation != .sendBeforePersist else { return }
        switch Self.leaderAppends(in: rd.messages) {
        case rd.messages.count: return
        case 0: shell.send(rd.messages)
        default: shell.send(rd.messages.filter { !$0.isLeaderAppend })
        }
    }

    /// Applies the committed entries from position `first` on (those before it were
    /// applied by ``begin(_:shell:)``), takes the read states if `begin` did not, reports
    /// a role change and advances the core.
    @inlinable
    func applyAndAdvance<Shell: ReadyShell>(_ rd: Ready, from first: Int, takeReadStates: Bool,
                                            shell: Shell) throws {
        let count = rd.committedEntries.count
        if first == 0, count > 0 {
            try shell.apply(rd.committedEntries)
        } else if first < count {
            try shell.apply(Array(rd.committedEntries[first...]))
        }
        if takeReadStates, !rd.readStates.isEmpty { shell.accept(rd.readStates) }
        if let soft = rd.softState { shell.softStateChanged(soft) }
        shell.advance(rd)
    }
}
