import AegisRaft

/// One simulated node as a `ReadyShell`: what each step of a `Ready` does in the core
/// simulator (in-memory storage, the register machine, the simulated network, the
/// invariant checker). The order of the steps is `ReadyExecutor`'s.
final class SimulatorShell: ReadyShell {
    unowned let sim: Simulator
    let k: Int
    let node: Simulator.Node

    init(_ sim: Simulator, _ k: Int) {
        self.sim = sim
        self.k = k
        node = sim.nodes[k]
    }

    func nextReady() throws -> Ready? {
        guard var core = node.core, core.hasReady else { return nil }
        node.core = nil  // keep the core uniquely referenced while it mutates
        defer { node.core = core }
        return try core.ready()
    }

    func send(_ messages: [RaftMessage]) {
        for m in messages { sim.send(m) }
    }

    func installSnapshot(_ snapshot: Snapshot) throws {
        try sim.persist(k, snapshot: snapshot, entries: [], hardState: nil)
        sim.result.snapshotsInstalled += 1
    }

    func persist(hardState: RaftState?, entries: [LogEntry], sync: Bool) throws {
        try sim.persist(k, snapshot: nil, entries: entries, hardState: hardState)
    }

    func apply(_ entries: [LogEntry]) throws {
        for entry in entries where entry.index > node.machine.appliedIndex {
            let output = node.machine.apply(entry)
            sim.checker.observeApplied(node: node.id, entry: entry)
            if sim.healed, let marker = sim.livenessMarker(entry), sim.livenessMarkers.contains(marker) {
                sim.livenessDone = true
            }
            sim.completeWrite(k, entry, output)
        }
    }

    /// Takes the read points and serves those already applied (read states may come
    /// before the disk write: see `ReadyExecutor.begin(_:shell:)`).
    func accept(_ readStates: [ReadState]) {
        for state in readStates { sim.acceptReadState(k, state) }
        sim.serveReads(k)
    }

    func softStateChanged(_ state: SoftState) {}

    func advance(_ ready: Ready) {
        guard var core = node.core else { return }
        node.core = nil
        core.advance(ready)
        node.core = core
    }

    func advanced(_ ready: Ready) throws {
        sim.serveReads(k)
        if ready.shouldSnapshot { try sim.takeSnapshot(k) }
    }
}
