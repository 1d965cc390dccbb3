import AegisKV
import AegisRaft
import AegisReplication
import AegisStorage
import AegisTransport

extension NodeSimulator {
    // MARK: Nodes

    static let dataDirectory = "/data"

    /// The storage settings: small segments (many of them, compacted often), no writer
    /// thread (deterministic), no preallocation (the simulated disk is memory).
    static var storageOptions: DiskStorageOptions {
        var options = DiskStorageOptions(segmentSize: 4096, retainedSnapshots: 2)
        options.preallocateSegments = false
        options.writerThread = false
        return options
    }

    /// Opens the node's storage (recovery) and its node loop. A storage that refuses to
    /// open marks the node for replacement.
    func start(_ k: Int) {
        let node = nodes[k]
        let storage: DiskStorage
        do {
            storage = try DiskStorage(directory: Self.dataDirectory, fileSystem: node.disk, options: Self.storageOptions)
        } catch {
            refuse(k, "\(error)")
            return
        }
        var configuration = NodeConfiguration(nodeID: node.id, bootstrapVoters: node.started ? [] : ids, raft: raft)
        configuration.tickInterval = .milliseconds(10)
        configuration.requestTimeout = .seconds(3)
        configuration.awaitingAdd = node.joining
        // Half the seeds snapshot whenever the core asks; the others skip snapshots the
        // log since the last one is too small for (fraction 0.1 to 1.0, from the seed
        // alone so the fault schedule of a seed is the same either way).
        let draw = (options.seed &* 0x2545_F491_4F6C_DD1D) >> 59
        configuration.snapshotLogFraction = draw < 16 ? 0 : Double(draw - 15) / 16
        let transport = SimulatedTransport(localID: node.id, peers: ids.filter { $0 != node.id }) { [unowned self] in
            self.send($0)
        }
        let replica: ReplicaNode
        do {
            replica = try ReplicaNode(configuration: configuration, storage: storage, transport: transport,
                                      logger: logger, clock: { [clock] in clock.now },
                                      randomSeed: options.seed &+ UInt64(k) &* 7919 &+ UInt64(node.incarnation) &* 104_729,
                                      snapshotRunner: { [unowned self] work in
                                          // Snapshot work runs off the loop: a later event.
                                          let incarnation = self.nodes[k].incarnation
                                          self.queue.push(.snapshotWork(node: k, incarnation: incarnation, work: work),
                                                          at: self.now + 1 + self.rng.next() % (5 * Self.tickUnits))
                                      },
                                      mutation: options.mutation)
        } catch {
            refuse(k, "\(error)")
            return
        }
        replica.onApply = { [unowned self] entry in self.applied(k, entry) }
        node.replica = replica
        node.started = true
        node.incarnation += 1
        // What survived on disk: the durable term never goes down, and the log holds
        // every entry up to the durable commit index, each the committed one.
        let hardState = storage.storedHardState
        checker.observeRestart(node: node.id, durableTerm: hardState.term)
        let first = (try? storage.firstIndex()) ?? 1
        checker.observeDurableLog(node: node.id, snapshotIndex: first - 1, commitIndex: hardState.commitIndex) {
            try? storage.term(at: $0)
        }
        observe(k)
        trace.record(now, "start", k)
        queue.push(.tick(node: k, incarnation: node.incarnation), at: now + 1 + rng.next() % Self.tickUnits)
    }

    /// The storage refused to open (or the node stopped on a storage failure): it waits
    /// to be replaced.
    func refuse(_ k: Int, _ why: String) {
        let node = nodes[k]
        node.replica?.stop()
        node.replica = nil
        node.incarnation += 1
        guard !node.refused else { return }
        node.refused = true
        result.refusals += 1
        trace.record(now, "refused", k)
        if !node.disk.statistics.damagedFiles.isEmpty {
            result.corruptionsDetected += 1
        } else {
            // The disk lost only what was never synced: the storage promises to recover
            // from that (Docs/storage.md), so a refusal means a sync is missing or wrong.
            result.unexpectedErrors.append("\(node.id) refused to start although its disk damaged nothing it had synced: \(why)")
        }
        if debugging { print("DEBUG refused \(node.id) damaged=\(node.disk.statistics.damagedFiles) \(why)") }
        if !isPromised(why) { result.unexpectedErrors.append("\(node.id) could not open its storage: \(why)") }
    }

    /// Whether an open or runtime failure is one the storage documents (corruption it
    /// detected, an unreadable file, an unrecoverable gap): anything else is a bug.
    func isPromised(_ why: String) -> Bool {
        let promised = ["corrupt", "checksum", "damaged", "I/O error", "EIO", "input/output", "gap", "missing",
                        "unreadable", "refus", "mismatch", "torn", "invalid"]
        let lower = why.lowercased()
        return promised.contains { lower.contains($0.lowercased()) }
    }

    /// Every entry any node applies: the same index must always hold the same entry.
    func applied(_ k: Int, _ entry: LogEntry) {
        checker.observeApplied(node: nodes[k].id, entry: entry)
        let hash = InvariantChecker.hash(entry)
        if let first = appliedAt[entry.index] {
            if first != hash { conflicts.insert(entry.index) }
        } else {
            appliedAt[entry.index] = hash
        }
    }

    func crashSomeNode() {
        // Faults stay within a minority: no crash while a node waits to be replaced, and
        // a majority stays up so that there is progress to check.
        guard replacing == nil, !nodes.contains(where: { $0.refused || $0.joining }) else { return }
        let up = nodes.indices.filter { nodes[$0].replica != nil && !nodes[$0].losingPower }
        guard up.count > nodes.count / 2 + 1 || (up.count == nodes.count && nodes.count == 3) else { return }
        var victim = up[Int(rng.next() % UInt64(up.count))]
        if rng.next() % 2 == 0, let leader = currentLeader, up.contains(leader) { victim = leader }
        let node = nodes[victim]
        switch rng.next() % 5 {
        case 4:
            // A graceful stop (SIGTERM): a leader hands leadership over first; the node
            // keeps running until the handover completed (or timed out), then stops
            // (`observe`), and restarts later.
            guard !node.stoppingGracefully else { return }
            node.stoppingGracefully = true
            trace.record(now, "graceful-stop", victim)
            if let core = node.replica?.core, core.role == .leader, let last = try? core.log.lastIndex() {
                node.handoverStart = (core.term, last)
            }
            node.replica?.stopGracefully()
            observe(victim)
        case 0:
            // The power goes between two writes: nothing more reaches the disk.
            node.disk.cutPower(afterOperations: 0)
            powerOff(victim)
        case 1, 2:
            // The power goes at a random disk operation to come (within the next 150):
            // in the middle of a batch, between a write and its sync, inside a snapshot
            // or a compaction. The node stops on the I/O error and the machine goes dark
            // at once (`observe`), or after 50 ticks if the node did not write as much.
            node.disk.cutPower(afterOperations: 1 + Int(rng.next() % 150))
            node.losingPower = true
            trace.record(now, "brownout", victim)
            queue.push(.powerOff(node: victim, incarnation: node.incarnation), at: now + 50 * Self.tickUnits)
        default:
            // A process kill: everything written survives (the page cache).
            node.replica?.stop()
            node.replica = nil
            node.incarnation += 1
            result.crashes += 1
            trace.record(now, "kill", victim)
            queue.push(.restart(node: victim), at: draw(800))
        }
    }

    /// A graceful stop completed: the process exits (everything written survives).
    func finishGracefulStop(_ k: Int) {
        let node = nodes[k]
        node.replica?.stop()
        node.replica = nil
        node.incarnation += 1
        node.stoppingGracefully = false
        node.handoverStart = nil
        result.gracefulStops += 1
        trace.record(now, "stopped", k)
        queue.push(.restart(node: k), at: draw(800))
    }

    /// The machine loses power: the node stops, and its disk keeps what was synced (and
    /// part of what was not).
    func powerOff(_ k: Int) {
        let node = nodes[k]
        node.disk.cutPower(afterOperations: 0)
        node.replica?.stop()
        node.replica = nil
        node.incarnation += 1
        node.disk.powerLoss(seed: rng.next())
        node.losingPower = false
        result.crashes += 1
        result.powerLosses += 1
        trace.record(now, "power-loss", k)
        queue.push(.restart(node: k), at: draw(800))
    }

    // MARK: Network

    func send(_ messages: [Message]) {
        for m in messages {
            guard let from = index(of: m.from), let to = index(of: m.to), !blocked.contains(from * 16 + to) else { continue }
            for time in SimulatedNetwork.arrivals(at: now, profile, &rng) { queue.push(.deliver(m), at: time) }
        }
    }

    func startPartition() {
        partitionID += 1
        blocked = SimulatedNetwork.partition(nodes: nodes.count, &rng)
        result.partitions += 1
        trace.record(now, "partition", 0, UInt64(blocked.count))
        queue.push(.healPartition(id: partitionID), at: draw(1_500))
    }

    // MARK: Replacing a node whose storage refused

    /// One replacement at a time: the leader removes the node; once the removal is
    /// applied the node's disk is wiped and it starts empty, and the leader adds it back
    /// (with its address, as `aegis` does).
    func continueReplacement() {
        if replacing == nil, let k = nodes.indices.first(where: { nodes[$0].refused }) {
            replacing = (k, false, false)
        }
        guard let (k, removed, proposed) = replacing, let l = currentLeader, let leader = nodes[l].replica else { return }
        let id = nodes[k].id
        let conf = leader.core.confState
        if !removed {
            if !conf.allMembers.contains(id) {
                // Removed: wipe and start empty, waiting to be added.
                let node = nodes[k]
                countDisk(node.disk)
                node.disk = SimulatedFileSystem(configuration: diskConfiguration)
                node.refused = false
                node.joining = true
                checker.observeReplaced(node: node.id)
                start(k)
                replacing = (k, true, false)
                trace.record(now, "wiped", k)
            } else if !proposed, !conf.isJoint {
                replacing = (k, false, true)
                leader.changeMembership(ConfChange([ConfChangeSingle(.removeNode, id)])) { [unowned self] outcome in
                    if case .failure = outcome, self.replacing?.node == k { self.replacing = (k, false, false) }
                }
            }
            return
        }
        if conf.voters.contains(id), nodes[k].replica?.awaitingAdd == false {
            nodes[k].joining = false
            replacing = nil
            result.replacements += 1
            trace.record(now, "replaced", k)
        } else if !proposed, !conf.isJoint, !conf.allMembers.contains(id) {
            replacing = (k, true, true)
            let change = ConfChange([ConfChangeSingle(.addVoter, id)], context: Array("127.0.0.\(k + 1):7000".utf8))
            leader.changeMembership(change) { [unowned self] outcome in
                if case .failure = outcome, self.replacing?.node == k { self.replacing = (k, true, false) }
            }
        }
    }

    // MARK: Clients

    /// One client operation through a random node (the leader most of the time):
    /// a write, a compare-and-swap or a linearizable read of one of a few keys.
    func clientOperation() {
        let up = nodes.indices.filter { nodes[$0].replica != nil }
        guard !up.isEmpty else { return }
        var target = up[Int(rng.next() % UInt64(up.count))]
        if rng.next() % 3 != 0, let leader = currentLeader { target = leader }
        guard let replica = nodes[target].replica else { return }
        let key = rng.next() % UInt64(Self.keys)
        let kvKey = Key("k\(key)")
        let client = UInt64(target)
        if options.keyspaceWorkload && rng.next() % 6 == 0 {
            replica.execute(keyspaceCommand().encoded()) { _ in }
            return
        }
        switch rng.next() % 10 {
        case 0..<5:
            let value = nextValue
            nextValue += 1
            let op = history.invokeWrite(client: client, key: key, value: value, at: now)
            written[key, default: []].append(value)
            replica.execute(Command.set(kvKey, encode(value)).encoded()) { [unowned self] outcome in
                self.completeWrite(op, outcome, swapped: nil)
            }
        case 5..<7:
            let value = nextValue
            nextValue += 1
            let candidates = written[key, default: []]
            let expected: UInt64 = candidates.isEmpty || rng.next() % 4 == 0
                ? 0 : candidates[Int(rng.next() % UInt64(candidates.count))]
            let op = history.invokeCompareAndSet(client: client, key: key, expected: expected, new: value, at: now)
            written[key, default: []].append(value)
            let expectation: Expectation = expected == 0 ? .version(0) : .value(encode(expected))
            let command = Command.compareAndSwap(kvKey, expected: expectation, new: encode(value))
            replica.execute(command.encoded()) { [unowned self] outcome in
                self.completeWrite(op, outcome, swapped: true)
            }
        default:
            let op = history.invokeRead(client: client, key: key, at: now)
            replica.read([kvKey]) { [unowned self] outcome in
                switch outcome {
                case .success(let values):
                    let value = values.first.flatMap { $0 }.map { self.decode($0.value) } ?? 0
                    self.history.complete(op, status: .ok, output: value, at: self.now)
                    self.result.readsChecked += 1
                case .failure:
                    self.history.complete(op, status: .fail, at: self.now)
                }
            }
        }
    }

    /// A command of the expiry, keyspace and transaction families on keys apart from the
    /// registers (`t0`…`t3`), so that the linearizability check is unchanged while
    /// expiry (relative deadlines resolved at apply, the leader's purges), renames and
    /// transactions run under every fault; the replicas' digests must still agree.
    func keyspaceCommand() -> Command {
        let key = Key("t\(rng.next() % 4)")
        let other = Key("t\(rng.next() % 4)")
        let milliseconds = Int64(rng.next() % 2_000)
        switch rng.next() % 9 {
        case 0: return .setWith(key, Array("v".utf8), condition: .always, returnPrevious: false,
                                expiry: .set(.after(milliseconds: milliseconds)))
        case 1: return .expire(key, .after(milliseconds: milliseconds), ExpireCondition.allCases[Int(rng.next() % 6)])
        case 2: return .persist(key)
        case 3: return .increment(key, by: 1)
        case 4: return .rename(key, to: other, onlyIfAbsent: rng.next() % 2 == 0)
        case 5: return .copy(key, to: other, replace: true)
        case 6: return .getAndExpire(key, .set(.at(milliseconds: Int64(now) + milliseconds)))
        case 7: return .keyspace(.scan(after: nil, pattern: Array("t*".utf8), count: 3, type: nil))
        default:
            return .transaction(watches: [WatchedKey(other, modRevision: rng.next() % 3)],
                                commands: [.increment(key, by: 1), .expire(key, .after(milliseconds: milliseconds), .always),
                                           .timeToLive(other)])
        }
    }

    /// Replicas that applied the same entries must hold the same state: deadlines,
    /// purges and transactions decided the same way everywhere.
    func checkReplicasAgree() {
        var digests: [LogIndex: (NodeID, String)] = [:]
        for node in nodes {
            guard let replica = node.replica, replica.failure == nil else { continue }
            let digest = replica.stateDigest
            if let (other, known) = digests[replica.appliedIndex], known != digest {
                result.unexpectedErrors.append("\(node.id) and \(other) applied through \(replica.appliedIndex) but their states differ")
            } else {
                digests[replica.appliedIndex] = (node.id, digest)
            }
        }
    }

    /// A register value as stored: its decimal digits, `:`, then padding that depends
    /// only on the value (0 to 1,500 bytes), so that batches span disk sectors and a
    /// power loss can tear them.
    func encode(_ value: UInt64) -> [UInt8] {
        Array("\(value):".utf8) + [UInt8](repeating: 0x2e, count: Int((value &* 0x9E37_79B9_7F4A_7C15) >> 32) % 1_500)
    }

    /// The register value of a stored value (0 if it does not parse).
    func decode(_ bytes: [UInt8]) -> UInt64 {
        let digits = bytes.prefix { $0 != UInt8(ascii: ":") }
        return UInt64(String(decoding: digits, as: UTF8.self)) ?? 0
    }

    /// A write's outcome: acknowledged (remember its index), refused before it was
    /// appended (failed), or unknown (left open).
    func completeWrite(_ op: OperationID, _ outcome: Result<CommandResult, any Error>, swapped: Bool?) {
        switch outcome {
        case .success(let result):
            var didSwap = true
            if swapped != nil, case .compareFailed = result.error {
                didSwap = false
                if debugging {
                    print("DEBUG op \(op) cas failed at index \(result.index): current \(result.value.map { decode($0) } ?? 0) error \(String(describing: result.error))")
                }
            }
            history.complete(op, status: .ok, swapped: didSwap, at: now)
            self.result.ackedWrites += 1
            acknowledged[result.index, default: 0] += 1
        case .failure(let error):
            switch error as? ReplicationError {
            case .lost?, .noLeader?, .notLeader?, .rejected?, .overloaded?:
                history.complete(op, status: .fail, at: now)
            default:
                break  // timeout, shutting down: the write may still commit
            }
        }
    }

    // MARK: Healing and liveness

    func healAll() {
        healed = true
        blocked = []
        profile.lossRate = 0
        profile.duplicateRate = 0
        trace.record(now, "heal", 0)
        for k in nodes.indices where nodes[k].replica == nil && !nodes[k].refused { start(k) }
        queue.push(.livenessProbe, at: now + Self.tickUnits)
    }

    /// Writes a marker through the current leader every few ticks until one is
    /// acknowledged.
    func livenessProbe() {
        guard !livenessDone else { return }
        if let l = currentLeader, let leader = nodes[l].replica {
            leader.execute(Command.set(Key("liveness"), Array(String(now).utf8)).encoded()) { [unowned self] outcome in
                if case .success = outcome { self.livenessDone = true }
            }
        }
        queue.push(.livenessProbe, at: now + 3 * Self.tickUnits)
    }
}

/// A node's network in the simulator: sends go to the simulator's event queue.
final class SimulatedTransport: Transport, PeerDirectory, @unchecked Sendable {
    let localID: NodeID
    var peers: [NodeID]
    let deliver: ([Message]) -> Void
    let inbound: AsyncStream<[Message]>

    init(localID: NodeID, peers: [NodeID], deliver: @escaping ([Message]) -> Void) {
        self.localID = localID
        self.peers = peers
        self.deliver = deliver
        inbound = AsyncStream { $0.finish() }
    }

    func send(_ messages: [Message]) { deliver(messages) }
    var stats: TransportStats { TransportStats() }
    func setPeer(_ peer: NodeID, address: PeerAddress) { if !peers.contains(peer) { peers.append(peer) } }
    func removePeer(_ peer: NodeID) { peers.removeAll { $0 == peer } }
}
