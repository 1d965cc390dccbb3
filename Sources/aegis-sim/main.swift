import AegisRaft
import AegisStorage
import AegisTestKit
import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `aegis-sim`: runs many seeded simulations of a Raft cluster under faults and
/// checks Raft's safety properties after every step.
struct AegisSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aegis-sim",
        abstract: "Deterministic simulation of Aegis Raft clusters under faults.",
        discussion: """
            Each seed draws its own fault rates (loss 0-30%, duplication 0-50%, reordering \
            delays, symmetric and asymmetric partitions, crash-restarts that tear the \
            write in progress) and runs a 3- or 5-node cluster. Safety invariants are \
            checked after every event; at the end all faults heal and a new proposal \
            must commit within 10 election timeouts. A failing seed prints its trace \
            tail and the command that replays it, and the exit status is 1.
            """)

    @Option(help: "Number of seeds to run.") var seeds: Int = 100
    @Option(help: "First seed.") var startSeed: UInt64 = 1
    @Option(help: "Run only this seed (overrides --seeds/--start-seed).") var seed: UInt64?
    @Option(help: "Length of the faulty phase in ticks.") var ticks: Int = 1_500
    @Option(help: "Cluster size (3 or 5); default: drawn per seed.") var nodes: Int?
    @Flag(help: "Run each seed twice and require identical trace hashes.") var checkDeterminism = false
    @Flag(help: "Print one JSON object as the last line.") var json = false
    @Flag(help: "Print one line per seed.") var verbose = false
    @Option(help: "Which simulators to run per seed: core (the Raft core over in-memory storage, with membership changes and transfers), node (the production node loop over DiskStorage on a simulated disk that loses unsynced writes), or both.")
    var layer: Layer = .both
    @Option(help: "Inject one bug (mutation test): send-before-persist, apply-before-persist, or a removed sync of the simulated disk: \(SyncMutation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var mutate: String?
    @Flag(help: "Stop at the first failing seed (mutation checks).") var stopOnFailure = false
    @Flag(help: "Node layer: also send expiry, keyspace and transaction commands, and require replicas at the same applied index to have the same state digest.")
    var keyspace = false

    @Option(help: "How far, in percent, each node's tick period may differ from the true one (0-99).")
    var tickDrift: Int = 10
    @Option(name: .customLong("read-mode"), help: "Read path: safe (ReadIndex rounds), lease (lease reads where check-quorum is on) or mixed (lease on odd seeds).")
    var readModeName: String = SimulatedReadMode.mixed.rawValue
    /// The parsed `--read-mode` (checked in `validate()`).
    var readMode: SimulatedReadMode { SimulatedReadMode(rawValue: readModeName) ?? .mixed }
    @Option(help: "The clock drift bound, in percent, the nodes' lease assumes (RaftConfig.maxClockDriftPercent); default: --tick-drift. Below --tick-drift the lease is unsound (a mutation check).")
    var leaseDriftBound: Int?

    enum Layer: String, ExpressibleByArgument { case core, node, both }

    func validate() throws {
        guard SimulatedReadMode(rawValue: readModeName) != nil else {
            throw ValidationError("--read-mode must be safe, lease or mixed")
        }
        guard (0...99).contains(tickDrift) else { throw ValidationError("--tick-drift must be between 0 and 99") }
        if let bound = leaseDriftBound, !(0...99).contains(bound) {
            throw ValidationError("--lease-drift-bound must be between 0 and 99")
        }
        var lease = RaftConfig(electionTimeout: 10, heartbeatInterval: 2)
        lease.readOnlyOption = .leaseBased
        lease.maxClockDriftPercent = leaseDriftBound ?? tickDrift
        if readMode != .safe && lease.leaseDurationTicks < 1 {
            throw ValidationError("a drift bound of \(lease.maxClockDriftPercent)% leaves no lease with the simulator's 10-tick election timeout")
        }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let seedList: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(max(seeds, 0))).map { startSeed + $0 }
        var totals = (steps: 0, commits: 0, elections: 0, crashes: 0, partitions: 0)
        var extra = (confChanges: 0, snapshotsInstalled: 0, snapshotsTaken: 0, transfers: 0, transfersCompleted: 0,
                     operations: 0, readsChecked: 0, linearizability: 0)
        var violations = 0, livenessFailures = 0, nondeterministic = 0, failedSeeds: [UInt64] = []
        var readyMutation = ReadyMutation.none
        var syncMutations: Set<SyncMutation> = []
        if let mutate {
            if let m = ReadyMutation(rawValue: mutate) { readyMutation = m }
            else if let m = SyncMutation(rawValue: mutate) { syncMutations = [m] }
            else { throw ValidationError("unknown mutation '\(mutate)'") }
        }
        var node = NodeTotals()
        var seedsRun = 0
        for s in seedList {
            if stopOnFailure && !failedSeeds.isEmpty { break }
            seedsRun += 1
            if layer != .core {
                var options = NodeSimulationOptions(seed: s)
                options.ticks = ticks
                options.nodeCount = nodes
                options.mutation = readyMutation
                options.syncMutations = syncMutations
                options.keyspaceWorkload = keyspace
                options.tickDriftPercent = tickDrift
                options.readMode = readMode
                options.leaseDriftBoundPercent = leaseDriftBound ?? tickDrift
                let result = NodeSimulator(options: options).run()
                var deterministic = true
                if checkDeterminism {
                    let again = NodeSimulator(options: options).run()
                    deterministic = again.traceHash == result.traceHash && again.steps == result.steps
                    if !deterministic { nondeterministic += 1 }
                }
                node.add(result)
                violations += result.violations.count + (result.lostAcked > 0 && result.violations.isEmpty ? 1 : 0)
                extra.linearizability += result.linearizabilityViolations.count
                if result.livenessFailure != nil { livenessFailures += 1 }
                if verbose {
                    print("seed \(s) node-sim: nodes \(result.nodeCount) steps \(result.steps) commits \(result.commits) elections \(result.elections) crashes \(result.crashes) power losses \(result.powerLosses) graceful stops \(result.gracefulStops) torn \(result.tornWrites) corruptions \(result.corruptionsDetected)/\(result.corruptionsInjected) refusals \(result.refusals) replaced \(result.replacements) acked \(result.ackedWrites) lost \(result.lostAcked) reads \(result.readsChecked)/\(result.operations) \(result.passed && deterministic ? "ok" : "FAIL")")
                }
                if !result.passed || !deterministic {
                    failedSeeds.append(s)
                    reportNode(result, deterministic: deterministic)
                }
            }
            guard layer != .node, !(stopOnFailure && failedSeeds.last == s) else { continue }
            var options = SimulationOptions(seed: s)
            options.ticks = ticks
            options.nodeCount = nodes
            options.mutation = readyMutation
            options.tickDriftPercent = tickDrift
            options.readMode = readMode
            options.leaseDriftBoundPercent = leaseDriftBound ?? tickDrift
            let result = Simulator(options: options).run()
            totals.steps += result.steps
            totals.commits += result.commits
            totals.elections += result.elections
            totals.crashes += result.crashes
            totals.partitions += result.partitions
            violations += result.violations.count
            extra.confChanges += result.confChanges
            extra.snapshotsInstalled += result.snapshotsInstalled
            extra.snapshotsTaken += result.snapshotsTaken
            extra.transfers += result.transfers
            extra.transfersCompleted += result.transfersCompleted
            extra.operations += result.operations
            extra.readsChecked += result.readsChecked
            extra.linearizability += result.linearizabilityViolations.count
            if result.livenessFailure != nil { livenessFailures += 1 }
            var deterministic = true
            if checkDeterminism {
                let again = Simulator(options: options).run()
                deterministic = again.traceHash == result.traceHash && again.steps == result.steps
                if !deterministic { nondeterministic += 1 }
            }
            if verbose {
                print("seed \(s): nodes \(result.nodeCount) steps \(result.steps) commits \(result.commits) elections \(result.elections) crashes \(result.crashes) partitions \(result.partitions) conf \(result.confChanges) snaps \(result.snapshotsTaken)/\(result.snapshotsInstalled) transfers \(result.transfersCompleted)/\(result.transfers) reads \(result.readsChecked)/\(result.operations) [\(result.profile)] \(result.passed && deterministic ? "ok" : "FAIL")")
            }
            if !result.passed || !deterministic {
                if failedSeeds.last != s { failedSeeds.append(s) }
                report(result, deterministic: deterministic)
            }
        }
        let seconds = Double((clock.now - started).components.attoseconds) / 1e18 + Double((clock.now - started).components.seconds)
        if json {
            print("{\"seeds\":\(seedsRun),\"violations\":\(violations),\"liveness_failures\":\(livenessFailures),\"nondeterministic\":\(nondeterministic),\"steps\":\(totals.steps),\"commits\":\(totals.commits),\"elections\":\(totals.elections),\"crashes\":\(totals.crashes),\"partitions\":\(totals.partitions),\"conf_changes\":\(extra.confChanges),\"snapshots_taken\":\(extra.snapshotsTaken),\"snapshots_installed\":\(extra.snapshotsInstalled),\"transfers\":\(extra.transfers),\"transfers_completed\":\(extra.transfersCompleted),\"client_operations\":\(extra.operations),\"reads_checked\":\(extra.readsChecked),\"linearizability_violations\":\(extra.linearizability),\"power_losses\":\(node.powerLosses),\"process_kills\":\(node.crashes - node.powerLosses),\"graceful_stops\":\(node.gracefulStops),\"torn_writes\":\(node.tornWrites),\"corruptions_injected\":\(node.corruptionsInjected),\"corruptions_detected\":\(node.corruptionsDetected),\"refusals\":\(node.refusals),\"replacements\":\(node.replacements),\"acked_writes\":\(node.ackedWrites),\"lost_acked\":\(node.lostAcked),\"node_sim_commits\":\(node.commits),\"node_sim_reads_checked\":\(node.readsChecked),\"node_sim_snapshots\":\(node.snapshots),\"layer\":\"\(layer.rawValue)\",\"mutation\":\"\(mutate ?? "none")\",\"tick_drift_percent\":\(tickDrift),\"lease_drift_bound_percent\":\(leaseDriftBound ?? tickDrift),\"read_mode\":\"\(readMode.rawValue)\",\"determinism_checked\":\(checkDeterminism),\"failed_seeds\":\(failedSeeds),\"seconds\":\((seconds * 100).rounded() / 100)}")
        } else {
            if layer != .core {
                print("node simulator: \(node.commits) commits, \(node.crashes) crashes (\(node.powerLosses) power losses, \(node.tornWrites) torn writes), \(node.gracefulStops) graceful stops, corruptions injected \(node.corruptionsInjected), detected \(node.corruptionsDetected), refusals \(node.refusals), replacements \(node.replacements), acked writes \(node.ackedWrites), lost acked \(node.lostAcked)")
            }
             print("\(seedsRun) seeds, \(totals.steps) steps, \(totals.commits) commits, \(totals.elections) elections, \(totals.crashes) crashes, \(totals.partitions) partitions; violations \(violations), liveness failures \(livenessFailures) (tick drift \(tickDrift)%, lease drift bound \(leaseDriftBound ?? tickDrift)%, reads \(readMode.rawValue))\(checkDeterminism ? ", nondeterministic \(nondeterministic)" : "") in \(String(format: seconds)) s")
        }
        if !failedSeeds.isEmpty { throw ExitCode(1) }
    }

    func report(_ result: SimulationResult, deterministic: Bool) {
        var lines = ["FAILED seed \(result.seed) (\(result.nodeCount) nodes, \(result.profile))"]
        for v in result.violations { lines.append("  violation: \(v)") }
        if let l = result.livenessFailure { lines.append("  liveness: \(l)") }
        if let f = result.finalState { lines.append("  state: \(f)") }
        for v in result.linearizabilityViolations.prefix(3) { lines.append("  linearizability: \(v)") }
        for e in result.unexpectedErrors.prefix(5) { lines.append("  error: \(e)") }
        if !deterministic { lines.append("  nondeterministic: the same seed produced a different trace") }
        lines.append("  last events:")
        for t in result.traceTail { lines.append("    \(t)") }
        lines.append("  replay: swift run -c release aegis-sim --seed \(result.seed) --ticks \(ticks)\(clockFlags) --verbose")
        printError(lines.joined(separator: "\n"))
    }
}

extension AegisSim {
    /// The clock and read options of this run, for replay commands.
    var clockFlags: String {
        " --tick-drift \(tickDrift) --read-mode \(readMode.rawValue) --lease-drift-bound \(leaseDriftBound ?? tickDrift)"
    }

    func reportNode(_ result: NodeSimulationResult, deterministic: Bool) {
        var lines = ["FAILED seed \(result.seed) in the node simulator (\(result.nodeCount) nodes, \(result.profile))"]
        for v in result.violations { lines.append("  violation: \(v)") }
        if result.lostAcked > 0 { lines.append("  lost acknowledged writes: \(result.lostAcked)") }
        if let l = result.livenessFailure { lines.append("  liveness: \(l)") }
        for v in result.linearizabilityViolations.prefix(3) { lines.append("  linearizability: \(v)") }
        for e in result.unexpectedErrors.prefix(5) { lines.append("  error: \(e)") }
        if !deterministic { lines.append("  nondeterministic: the same seed produced a different trace") }
        lines.append("  last events:")
        for t in result.traceTail { lines.append("    \(t)") }
        lines.append("  replay: swift run -c release aegis-sim --layer node --seed \(result.seed) --ticks \(ticks)\(clockFlags)\(mutate.map { " --mutate \($0)" } ?? "") --verbose")
        printError(lines.joined(separator: "\n"))
    }
}

/// The node simulator's counters over all seeds.
struct NodeTotals {
    var commits = 0, crashes = 0, powerLosses = 0, tornWrites = 0, corruptionsInjected = 0, corruptionsDetected = 0
    var refusals = 0, replacements = 0, ackedWrites = 0, lostAcked = 0, readsChecked = 0, snapshots = 0
    var gracefulStops = 0

    mutating func add(_ r: NodeSimulationResult) {
        commits += r.commits
        crashes += r.crashes
        powerLosses += r.powerLosses
        tornWrites += r.tornWrites
        corruptionsInjected += r.corruptionsInjected
        corruptionsDetected += r.corruptionsDetected
        refusals += r.refusals
        replacements += r.replacements
        ackedWrites += r.ackedWrites
        lostAcked += r.lostAcked
        readsChecked += r.readsChecked
        snapshots += r.snapshotsTaken
        gracefulStops += r.gracefulStops
    }
}

func String(format seconds: Double) -> String {
    let hundredths = Int((seconds * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        _ = string.withCString { Glibc.write(2, $0, strlen($0)) }
    }
}

AegisSim.main()
