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

/// Three cores wired together by function calls.
struct CoreCluster {
    let ids: [NodeID] = ["n1", "n2", "n3"]
    var cores: [RaftCore] = []
    var storages: [MemoryStorage] = []
    let payload: [UInt8]

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
            storages.append(s)
            cores.append(try RaftCore(id: id, config: c, storage: s))
        }
    }

    /// Handles every node's Ready once; returns the messages they produced and the
    /// command entries the leader (node 0) applied.
    mutating func handleReadies(into outbox: inout [RaftMessage]) throws -> Int {
        var applied = 0
        for k in cores.indices where cores[k].hasReady {
            let rd = try cores[k].ready()
            let storage = storages[k]
            try storage.append(rd.entries)
            if let hs = rd.hardState { try storage.setHardState(hs) }
            outbox.append(contentsOf: rd.messages)
            if k == 0 {
                for e in rd.committedEntries where e.type == .command { applied += 1 }
            }
            cores[k].advance(rd)
            if rd.shouldSnapshot {
                try storage.createSnapshot(at: cores[k].appliedIndex, conf: cores[k].confState, data: [])
            }
        }
        return applied
    }

    mutating func deliver(_ messages: [RaftMessage]) throws {
        for m in messages {
            switch m.to.rawValue {
            case "n1": try cores[0].step(m)
            case "n2": try cores[1].step(m)
            default: try cores[2].step(m)
            }
        }
    }

    mutating func measure(proposers: Int, seconds: Double) throws -> (commits: Int, seconds: Double, perSecond: Double, rounds: Int) {
        cores[0].campaign()
        var outbox: [RaftMessage] = []
        for _ in 0..<20 {
            _ = try handleReadies(into: &outbox)
            let batch = outbox
            outbox.removeAll(keepingCapacity: true)
            try deliver(batch)
        }
        guard cores[0].isLeader else { throw RaftError.notLeader(leader: cores[0].leader) }
        var idle = proposers
        var commits = 0, rounds = 0
        let start = monotonicSeconds()
        var now = start
        while now - start < seconds {
            for _ in 0..<64 {
                while idle > 0 {
                    try cores[0].propose(payload)
                    idle -= 1
                }
                let applied = try handleReadies(into: &outbox)
                commits += applied
                idle += applied
                let batch = outbox
                outbox.removeAll(keepingCapacity: true)
                try deliver(batch)
                rounds += 1
                if rounds % 1024 == 0 { for k in cores.indices { cores[k].tick() } }
            }
            now = monotonicSeconds()
        }
        let elapsed = now - start
        return (commits, elapsed, Double(commits) / elapsed, rounds)
    }
}
