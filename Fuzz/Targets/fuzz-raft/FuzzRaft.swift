// Fuzz target: `RaftCore.step` fed with arbitrary messages from a hostile peer.
//
// Every input starts from the same three-node cluster (n1 elected leader, a few
// entries proposed and committed everywhere), elected once per process and reset
// before each input (`Cluster.reset(to:)`; AEGIS_FUZZ_CHECK_RESET=1 also runs each
// input on a freshly elected cluster and compares). The input is then read as a script
// of actions: deliver a crafted message to the leader or a follower, let the honest
// traffic flow, tick a node, propose on the leader. Crafted messages are decoded from
// the input by `MessageReader` below (not from the wire format, so that the fuzzer
// spends its time on field values rather than on framing): terms and indexes are
// picked near the receiver's own (its term, last index, commit index, plus or minus
// one) or at the edges (0, 2^62, 2^64-1), entries are contiguous or not, snapshot
// chunks have any offset.
//
// An error thrown by `step` is a refused message: fine. A trap, a crash or an ASan
// report is a bug. A node whose `Ready` cannot be persisted (the storage refuses what
// the core asked it to write) is stopped like a real node would be; set
// AEGIS_FUZZ_STRICT_READY=1 to make that a crash too (issue 12: "a storage error
// caused by input must never be treated as a disk failure").
internal import AegisRaft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private let strictReady = getenv("AEGIS_FUZZ_STRICT_READY").map { String(cString: $0) == "1" } ?? false
/// AEGIS_FUZZ_CHECK_RESET=1: also run every input on a cluster elected from scratch and
/// crash if it ends in a different state than the reused one (checks the reset).
private let checkReset = getenv("AEGIS_FUZZ_CHECK_RESET").map { String(cString: $0) == "1" } ?? false

/// The cluster every input runs on: elected once, reset to that state before each input
/// (building and electing it took most of the time of an input). libFuzzer calls the
/// fuzz function from one thread.
nonisolated(unsafe) private let shared: (cluster: Cluster, prepared: Cluster.Checkpoint) = {
    do {
        let cluster = try Cluster.elected()
        return (cluster, cluster.checkpoint())
    } catch {
        fatalError("the harness could not set up its cluster: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    let (cluster, prepared) = shared
    cluster.reset(to: prepared)
    run(input, on: cluster)
    if checkReset {
        let fresh: Cluster
        do { fresh = try Cluster.elected() } catch { fatalError("the harness could not set up its cluster: \(error)") }
        run(input, on: fresh)
        let reused = cluster.summary(), expected = fresh.summary()
        precondition(reused == expected, "the reset cluster ended in \(reused), a fresh one in \(expected)")
    }
    return 0
}

/// Runs one input's script of actions on `cluster`.
private func run(_ bytes: UnsafeBufferPointer<UInt8>, on cluster: Cluster) {
    var input = ByteStream(bytes)
    var actions = 0
    while !input.isEmpty && actions < 64 {
        actions += 1
        let op = input.u8()
        switch op % 10 {
        case 0...5:
            // A crafted message to the leader (n1) or a follower (n2, sometimes n3).
            let target = op & 0x10 != 0 ? 0 : (op & 0x20 != 0 ? 2 : 1)
            var reader = MessageReader(input: input, receiver: cluster.cores[target])
            let message = reader.message(to: cluster.ids[target])
            input = reader.input
            cluster.step(target, message)
        case 6:
            cluster.deliverAll(rounds: Int(op >> 4) + 1)
        case 7:
            let node = Int(op >> 4) % cluster.ids.count
            cluster.tick(node, count: Int(input.u8() % 24) + 1)
        case 8:
            let node = Int(op >> 4) % cluster.ids.count
            cluster.with(node) { core in _ = try core.propose(input.bytes(Int(op >> 4))) }
        default:
            // A client read or a leadership transfer on a node.
            let node = Int(op >> 4) % cluster.ids.count
            if op & 0x80 != 0 {
                let to = cluster.ids[Int(input.u8()) % cluster.ids.count]
                cluster.with(node) { try $0.transferLeadership(to: to) }
            } else {
                let context = input.u64()
                cluster.with(node) { try $0.readIndex(context: context) }
            }
        }
    }
    // Let the cluster run on: crafted state must not make the honest traffic trap.
    cluster.deliverAll(rounds: 8)
    for node in cluster.ids.indices { cluster.tick(node, count: 12) }
    cluster.deliverAll(rounds: 8)
}

/// Three nodes over `MemoryStorage`, messages held until delivered. Nodes are
/// addressed by their position in `ids`; the cores are mutated in place in `cores`
/// (taking one out and putting it back would copy its buffers on every step).
final class Cluster {
    let ids: [NodeID] = ["n1", "n2", "n3"]
    var cores: [RaftCore] = []
    let storages: [MemoryStorage]
    let receivers: [MemorySnapshotReceiver]
    var pending: [RaftMessage] = []
    /// Nodes whose storage refused a write: a real node stops there.
    var stopped: [Bool] = [false, false, false]

    /// A cluster with n1 as leader and three committed commands.
    static func elected() throws -> Cluster {
        let cluster = try Cluster()
        cluster.with(0) { $0.campaign() }
        cluster.deliverAll(rounds: 20)
        for k in 0..<3 { cluster.with(0) { _ = try $0.propose([UInt8(k), 1, 2, 3]) } }
        cluster.deliverAll(rounds: 20)
        guard cluster.cores[0].isLeader else { throw RaftError.invalidMessage("n1 did not win") }
        return cluster
    }

    init() throws {
        var config = RaftConfig()
        // Small enough that snapshots, compaction and chunked transfers happen.
        config.snapshotThreshold = 8
        config.snapshotTrailingEntries = 2
        config.snapshotChunkSize = 16
        config.maxSizePerMessage = 256
        config.maxInflightMessages = 4
        config.maxInflightBytes = 1024
        config.maxUncommittedBytes = 4096
        let conf = ConfState(voters: Set(ids))
        storages = ids.map { _ in MemoryStorage(conf: conf) }
        receivers = ids.map { _ in MemorySnapshotReceiver() }
        for (k, id) in ids.enumerated() {
            var c = config
            c.randomSeed = UInt64(k + 1)
            cores.append(try RaftCore(id: id, config: c, storage: storages[k], snapshotReceiver: receivers[k]))
        }
    }

    /// Everything a run changes, saved to start again from here (`reset(to:)`).
    struct Checkpoint {
        let cores: [RaftCore]
        /// Copies of `storages` taken at the checkpoint, never written.
        let storages: [MemoryStorage]
        let pending: [RaftMessage]
        let stopped: [Bool]
    }

    /// Saves the current state. Only valid while no snapshot transfer is in progress
    /// (the receivers' partial data is not saved; `reset` empties them).
    func checkpoint() -> Checkpoint {
        Checkpoint(cores: cores, storages: storages.map { $0.copy() }, pending: pending, stopped: stopped)
    }

    /// Returns to `checkpoint`: the cores are copied back (values sharing their buffers
    /// until written), the storages and snapshot receivers, which the cores reference,
    /// get the checkpoint's contents again.
    func reset(to checkpoint: Checkpoint) {
        for (storage, saved) in zip(storages, checkpoint.storages) { storage.restore(from: saved) }
        for receiver in receivers { receiver.abort() }
        cores = checkpoint.cores
        pending = checkpoint.pending
        stopped = checkpoint.stopped
    }

    /// What the consistency check of AEGIS_FUZZ_CHECK_RESET compares.
    func summary() -> [String] {
        var lines = ids.indices.map { k -> String in
            let core = cores[k], storage = storages[k]
            let last = (try? core.log.lastIndex()) ?? 0
            return "\(ids[k]): term \(core.term) vote \(String(describing: core.votedFor)) role \(core.role) "
                + "leader \(String(describing: core.leader)) last \(last) committed \(core.log.committed) "
                + "applied \(core.appliedIndex) stats \(core.stats) stopped \(stopped[k]) "
                + "stored \(storage.storedHardState) \(String(describing: try? storage.firstIndex()))"
                + "...\(String(describing: try? storage.lastIndex()))"
        }
        lines.append("pending \(pending.count)")
        return lines
    }

    /// The position of a node in `ids`, `nil` for a node outside the cluster.
    func position(of id: NodeID) -> Int? { ids.firstIndex(of: id) }

    /// Runs `body` on a node (errors are refusals), then handles its `Ready`.
    func with(_ node: Int, _ body: (inout RaftCore) throws -> Void) {
        guard !stopped[node] else { return }
        let storage = storages[node]
        // One in-place access for the whole turn: reading a core out of the array
        // (even for `hasReady`) would copy it.
        if !Self.turn(&cores[node], storage: storage, pending: &pending, body) { stopped[node] = true }
    }

    func step(_ node: Int, _ message: RaftMessage) { with(node) { try $0.step(message) } }

    func tick(_ node: Int, count: Int) {
        for _ in 0..<count { with(node) { $0.tick() } }
    }

    /// Delivers pending messages, `rounds` times.
    func deliverAll(rounds: Int) {
        for _ in 0..<rounds where !pending.isEmpty {
            let batch = pending
            pending = []
            for m in batch { if let node = position(of: m.to) { step(node, m) } }
        }
        if pending.count > 4096 { pending.removeAll() }
    }

    /// Runs `body` on `core`, then handles its `Ready`s (at most 16) through the shared
    /// `ReadyExecutor`. Returns `false` if the node must stop.
    private static func turn(_ core: inout RaftCore, storage: MemoryStorage, pending: inout [RaftMessage],
                             _ body: (inout RaftCore) throws -> Void) -> Bool {
        do { try body(&core) } catch {}
        let shell = FuzzShell(core: core, storage: storage)
        defer {
            core = shell.core
            pending.append(contentsOf: shell.sent)
        }
        do {
            try ReadyExecutor().run(shell)
        } catch let refusal as StorageRefusal {
            if strictReady { fatalError("\(shell.core.id): the storage refused the core's Ready: \(refusal.error)") }
            return false
        } catch {
            // `ready()` or the snapshot bookkeeping refused: the node stops.
            return false
        }
        return true
    }
}

/// The storage refused what the core asked it to persist.
struct StorageRefusal: Error {
    var error: any Error
}

/// A fuzzed node as a `ReadyShell`: in-memory storage, no state machine (a snapshot's
/// data depends only on its index), at most 16 `Ready`s per turn.
final class FuzzShell: ReadyShell {
    var core: RaftCore
    let storage: MemoryStorage
    var sent: [RaftMessage] = []
    var rounds = 0

    init(core: RaftCore, storage: MemoryStorage) {
        self.core = core
        self.storage = storage
    }

    func nextReady() throws -> Ready? {
        guard core.hasReady && rounds < 16 else { return nil }
        rounds += 1
        return try core.ready()
    }
    func send(_ messages: [RaftMessage]) { sent.append(contentsOf: messages) }
    func installSnapshot(_ snapshot: Snapshot) throws {
        do { try storage.applySnapshot(snapshot) } catch { throw StorageRefusal(error: error) }
    }
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        do {
            try storage.append(entries)
            if let hardState { try storage.setHardState(hardState) }
        } catch {
            throw StorageRefusal(error: error)
        }
    }
    func apply(_ entries: [LogEntry]) throws {}
    func accept(_ readStates: [ReadState]) {}
    func softStateChanged(_ state: SoftState) {}
    func advance(_ ready: Ready) { core.advance(ready) }
    func advanced(_ ready: Ready) throws {
        guard ready.shouldSnapshot else { return }
        let index = core.appliedIndex
        _ = try storage.createSnapshot(at: index, conf: core.confState,
                                       data: Array(repeating: UInt8(truncatingIfNeeded: index), count: 40))
        let upTo = core.compactionIndex(afterSnapshotAt: index)
        if upTo > 0 { try storage.compact(upTo: upTo) }
    }
}

/// The fuzz input, read from the front; reads past the end give zeros.
struct ByteStream {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var isEmpty: Bool { position >= bytes.count }

    mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u64() -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(u8()) }
        return value
    }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in u8() } }
}

/// Decodes a `RaftMessage` from the fuzz input, with values chosen relative to the
/// receiving node's state so that the interesting boundaries are one byte away.
struct MessageReader {
    var input: ByteStream
    let term: Term
    let lastIndex: LogIndex
    let committed: LogIndex

    init(input: ByteStream, receiver: RaftCore) {
        self.input = input
        term = receiver.term
        lastIndex = (try? receiver.log.lastIndex()) ?? 0
        committed = receiver.log.committed
    }

    static let nodes: [NodeID] = ["n1", "n2", "n3", "n4", ""]

    mutating func node() -> NodeID {
        let b = input.u8()
        return Self.nodes[Int(b) % Self.nodes.count]
    }

    mutating func edge(_ selector: UInt8) -> UInt64? {
        switch selector {
        case 0: return 0
        case 1: return UInt64.max
        case 2: return UInt64.max - 1
        case 3: return RaftMessage.maxTermOrIndex
        case 4: return RaftMessage.maxTermOrIndex + 1
        case 5: return input.u64()
        case 6: return UInt64(input.u8())
        default: return nil
        }
    }

    mutating func term(_ selector: UInt8? = nil) -> Term {
        let s = selector ?? input.u8() % 12
        if let value = edge(s) { return value }
        switch s {
        case 7: return term &+ 1
        case 8: return term &- 1
        case 9: return term &+ 2
        default: return term
        }
    }

    mutating func index() -> LogIndex {
        let s = input.u8() % 14
        if let value = edge(s) { return value }
        switch s {
        case 7: return lastIndex &+ 1
        case 8: return lastIndex &- 1
        case 9: return committed
        case 10: return committed &+ 1
        case 11: return lastIndex &+ 2
        default: return lastIndex
        }
    }

    mutating func bool() -> Bool { input.u8() & 1 != 0 }

    mutating func entries() -> [LogEntry] {
        let count = Int(input.u8() % 6)
        var next = index() &+ 1
        var result: [LogEntry] = []
        for _ in 0..<count {
            let flags = input.u8()
            if flags & 0x80 != 0 { next = index() }  // not contiguous
            let type: EntryType
            switch flags % 4 {
            case 1: type = .configChange
            case 2: type = .noOp
            default: type = .command
            }
            var data = input.bytes(Int(flags >> 3 & 0x7))
            if type == .configChange && flags & 0x40 != 0 {
                // A well-formed configuration change, so that applying it goes deep.
                let kind = ConfChangeType(rawValue: input.u8() % 3) ?? .addVoter
                data = ConfChange([ConfChangeSingle(kind, node())], autoLeave: bool()).encoded()
            }
            result.append(LogEntry(index: next, term: term(input.u8() % 12), type: type, data: data,
                                   timestamp: UInt64(input.u8())))
            next = next &+ 1
        }
        return result
    }

    mutating func nodeSet() -> Set<NodeID> {
        let mask = input.u8()
        return Set(Self.nodes.enumerated().compactMap { mask & (1 << $0.offset) != 0 ? $0.element : nil })
    }

    mutating func message(to receiver: NodeID) -> RaftMessage {
        let from = node()
        let to: NodeID = input.u8() == 0xFF ? node() : receiver
        let kind = input.u8()
        let payload: RaftMessage.Payload
        switch kind % 12 {
        case 0:
            payload = .vote(VoteRequest(term: term(), candidateID: bool() ? from : node(), lastLogIndex: index(),
                                        lastLogTerm: term(), preVote: bool(), leadershipTransfer: bool()))
        case 1:
            payload = .voteResponse(VoteResponse(term: term(), voteGranted: bool(), voterID: bool() ? from : node(),
                                                 preVote: bool()))
        case 2:
            payload = .appendEntries(AppendEntriesRequest(
                term: term(), leaderID: bool() ? from : node(), prevLogIndex: index(), prevLogTerm: term(),
                entries: entries(), leaderCommit: index()))
        case 3:
            payload = .appendEntriesResponse(AppendEntriesResponse(
                term: term(), success: bool(), followerID: bool() ? from : node(), matchIndex: index(),
                rejectedIndex: index(), hintIndex: index(), hintTerm: term()))
        case 4:
            payload = .heartbeat(HeartbeatRequest(term: term(), leaderID: bool() ? from : node(), commitIndex: index(),
                                                  context: UInt64(input.u8())))
        case 5:
            payload = .heartbeatResponse(HeartbeatResponse(term: term(), followerID: bool() ? from : node(),
                                                           context: UInt64(input.u8()), requestsAppend: bool()))
        case 6:
            let conf = ConfState(voters: nodeSet(), outgoingVoters: input.u8() & 3 == 0 ? nodeSet() : [],
                                 learners: input.u8() & 3 == 0 ? nodeSet() : [])
            let metadata = SnapshotMetadata(index: index(), term: term(), confState: conf)
            let offsetSelector = input.u8() % 4
            let offset: UInt64 = offsetSelector == 0 ? 0 : (offsetSelector == 1 ? UInt64(input.u8()) : index())
            payload = .installSnapshot(InstallSnapshotRequest(
                term: term(), leaderID: bool() ? from : node(), metadata: metadata, offset: offset,
                data: input.bytes(Int(input.u8() % 40)), done: bool()))
        case 7:
            payload = .installSnapshotResponse(InstallSnapshotResponse(
                term: term(), followerID: bool() ? from : node(), snapshotIndex: index(), nextOffset: index(),
                done: bool(), rejected: bool()))
        case 8:
            payload = .timeoutNow(term: term())
        case 9:
            payload = .readIndex(term: term(), context: UInt64(input.u8()))
        case 10:
            payload = .readIndexResponse(term: term(), context: UInt64(input.u8()), index: index())
        default:
            payload = .forwardedProposal(term: term(), entries: entries())
        }
        return RaftMessage(from: from, to: to, payload: payload)
    }
}
