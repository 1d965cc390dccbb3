import AegisRaft
import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `aegis-bench core`: the Raft core alone. Three nodes in one process with in-memory
/// storage; messages are delivered by function call, so the figure is the cost of
/// the algorithm and its bookkeeping, not of disks or sockets.
struct CoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "Committed entries per second of three in-process Raft cores (in-memory storage).")

    @Flag(help: "Print one JSON object per scenario.") var json = false
    @Option(help: "Seconds per scenario.") var seconds: Double = 2
    @Option(help: "Comma-separated proposer counts.") var proposers: String = "1,64"
    @Option(help: "Comma-separated payload sizes in bytes.") var payloads: String = "16,256"

    func run() throws {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let proposerCounts = proposers.split(separator: ",").compactMap { Int($0) }
        let sizes = payloads.split(separator: ",").compactMap { Int($0) }
        if !json {
            print("aegis-bench core: 3 nodes in one process, MemoryStorage, messages by function call, \(seconds) s per scenario, \(cores) cores, \(buildMode) build")
            print("each proposer waits for its entry to be applied on the leader before proposing again")
        }
        for size in sizes {
            for count in proposerCounts {
                var cluster = try CoreCluster(payload: size)
                let r = try cluster.measure(proposers: count, seconds: seconds)
                if json {
                    print(#"{"bench":"core","nodes":3,"storage":"memory","payload_bytes":\#(size),"proposers":\#(count),"seconds":\#(fmt(r.seconds)),"commits":\#(r.commits),"commits_per_sec":\#(Int(r.perSecond)),"rounds":\#(r.rounds),"cores":\#(cores),"build":"\#(buildMode)"}"#)
                } else {
                    print("payload \(size) B, proposers \(count): \(Int(r.perSecond)) commits/s (\(r.commits) in \(fmt(r.seconds)) s, \(r.rounds) rounds)")
                }
            }
        }
    }
}

/// One benchmark node as a `ReadyShell` (the documented minimal subset: in-memory
/// storage, no state machine; the `Ready` order is `ReadyExecutor`'s).
final class BenchNode: ReadyShell {
    var core: RaftCore
    let storage: MemoryStorage
    /// Messages produced since the cluster last collected them.
    var outbox: [RaftMessage] = []
    /// Command entries applied since the cluster last counted them.
    var appliedCommands = 0

    init(core: RaftCore, storage: MemoryStorage) {
        self.core = core
        self.storage = storage
    }

    func nextReady() throws -> Ready? { core.hasReady ? try core.ready() : nil }
    func send(_ messages: [RaftMessage]) { outbox.append(contentsOf: messages) }
    func installSnapshot(_ snapshot: Snapshot) throws { try storage.applySnapshot(snapshot) }
    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try storage.append(entries)
        if let hardState { try storage.setHardState(hardState) }
    }
    func apply(_ entries: [LogEntry]) throws {
        for e in entries where e.type == .command { appliedCommands += 1 }
    }
    func accept(_ readStates: [ReadState]) {}
    func softStateChanged(_ state: SoftState) {}
    func advance(_ ready: Ready) { core.advance(ready) }
    func advanced(_ ready: Ready) throws {
        if ready.shouldSnapshot { try storage.createSnapshot(at: core.appliedIndex, conf: core.confState, data: []) }
    }
}

/// Three cores wired together by function calls.
struct CoreCluster {
    let ids: [NodeID] = ["n1", "n2", "n3"]
    var nodes: [BenchNode] = []
    let payload: [UInt8]
    let executor = ReadyExecutor()

    init(payload size: Int) throws {
        payload = [UInt8](repeating: 0xab, count: size)
        var config = RaftConfig()
        config.maxInflightMessages = 4096
        config.maxInflightBytes = 0
        config.maxUncommittedBytes = 0
        config.snapshotThreshold = 0
        for (k, id) in ids.enumerated() {
            let s = MemoryStorage(conf: ConfState(voters: Set(ids)))
            var c = config
            c.randomSeed = UInt64(k + 1)
            nodes.append(BenchNode(core: try RaftCore(id: id, config: c, storage: s), storage: s))
        }
    }

    /// Handles every node's Ready once; returns the messages they produced and the
    /// command entries the leader (node 0) applied.
    func handleReadies(into outbox: inout [RaftMessage]) throws -> Int {
        for node in nodes where node.core.hasReady {
            guard let rd = try node.nextReady() else { continue }
            try executor.begin(rd, shell: node)
            try executor.finish(rd, shell: node)
            outbox.append(contentsOf: node.outbox)
            node.outbox.removeAll(keepingCapacity: true)
        }
        defer { nodes[0].appliedCommands = 0 }
        return nodes[0].appliedCommands
    }

    func deliver(_ messages: [RaftMessage]) throws {
        for m in messages {
            switch m.to.rawValue {
            case "n1": try nodes[0].core.step(m)
            case "n2": try nodes[1].core.step(m)
            default: try nodes[2].core.step(m)
            }
        }
    }

    mutating func measure(proposers: Int, seconds: Double) throws -> (commits: Int, seconds: Double, perSecond: Double, rounds: Int) {
        nodes[0].core.campaign()
        var outbox: [RaftMessage] = []
        for _ in 0..<20 {
            _ = try handleReadies(into: &outbox)
            let batch = outbox
            outbox.removeAll(keepingCapacity: true)
            try deliver(batch)
        }
        guard nodes[0].core.isLeader else { throw RaftError.notLeader(leader: nodes[0].core.leader) }
        var idle = proposers
        var commits = 0, rounds = 0
        let start = monotonicSeconds()
        var now = start
        while now - start < seconds {
            for _ in 0..<64 {
                while idle > 0 {
                    try nodes[0].core.propose(payload)
                    idle -= 1
                }
                let applied = try handleReadies(into: &outbox)
                commits += applied
                idle += applied
                let batch = outbox
                outbox.removeAll(keepingCapacity: true)
                try deliver(batch)
                rounds += 1
                if rounds % 1024 == 0 { for node in nodes { node.core.tick() } }
            }
            now = monotonicSeconds()
        }
        let elapsed = now - start
        return (commits, elapsed, Double(commits) / elapsed, rounds)
    }
}
