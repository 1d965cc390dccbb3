import AegisRaft

/// The parts of a simulated run beyond plain replication: register clients whose
/// history is checked for linearizability, membership changes, leadership transfers
/// and snapshots.
extension Simulator {
    // MARK: Register clients

    /// The running leader, if exactly one node believes it leads (ties: lowest index).
    var currentLeader: Int? {
        nodes.indices.first { nodes[$0].core?.role == .leader && !nodes[$0].retired }
    }

    /// Issues one read, write or compare-and-set. Writes go to the leader most of the
    /// time (clients find it); reads go to any node (followers ask the leader for a
    /// read index).
    func clientOperation() {
        let up = nodes.indices.filter { nodes[$0].core != nil && !nodes[$0].retired }
        guard !up.isEmpty else { return }
        // Registers live for a window of 200 ticks each: an operation with an unknown
        // outcome stays concurrent with everything after it on its key, so bounded
        // per-key histories keep the linearizability search tractable.
        let key = (now / (200 * Self.tickUnits)) * 4 + rng.next() % 4
        let client = nextClient
        nextClient += 1
        result.operations += 1
        let roll = rng.next() % 10
        if roll < 4 {
            let target = up[Int(rng.next() % UInt64(up.count))]
            let op = history.invokeRead(client: client, key: key, at: now)
            input(target, .clientRead(op))
            return
        }
        var target = up[Int(rng.next() % UInt64(up.count))]
        if rng.next() % 5 != 0, let leader = currentLeader { target = leader }
        let value = nextOperation
        nextOperation += 1
        let op: OperationID
        let command: RegisterMachine.Command
        if roll < 7 {
            op = history.invokeWrite(client: client, key: key, value: value, at: now)
            command = .write(key: key, value: value)
        } else {
            // Expect what some node currently holds: a mix of hits and misses.
            let expected = nodes[target].machine.registers[key, default: 0]
            op = history.invokeCompareAndSet(client: client, key: key, expected: expected, new: value, at: now)
            command = .compareAndSet(key: key, expected: expected, new: value)
        }
        input(target, .clientWrite(op, command.encoded(operation: value)))
    }

    /// A node applied `entry`: a client write proposed at this index is now decided:
    /// ok (with the compare-and-set outcome) if the entry is the one proposed, fail if
    /// another entry won the index. Any node's apply decides it, so writes whose
    /// proposer crashed or lost leadership are still resolved exactly.
    func completeWrite(_ k: Int, _ entry: LogEntry, _ output: RegisterMachine.Output) {
        guard let pending = pendingWrites.removeValue(forKey: entry.index) else { return }
        for write in pending {
            guard entry.term == write.term else {
                history.complete(write.op, status: .fail, at: now)
                continue
            }
            switch output {
            case .compareAndSet(let swapped): history.complete(write.op, status: .ok, swapped: swapped, at: now)
            default: history.complete(write.op, status: .ok, at: now)
            }
        }
    }

    func acceptReadState(_ k: Int, _ state: ReadState) {
        let node = nodes[k]
        guard let pending = node.pendingReads.removeValue(forKey: state.context) else { return }
        node.readyReads.append((OperationID(Int(state.context)), pending.key, state.index))
    }

    /// Serves reads whose read index has been applied.
    func serveReads(_ k: Int) {
        let node = nodes[k]
        guard !node.readyReads.isEmpty else { return }
        let applied = node.machine.appliedIndex
        var waiting: [(op: OperationID, key: UInt64, index: LogIndex)] = []
        for read in node.readyReads {
            if read.index <= applied {
                history.complete(read.op, status: .ok, output: node.machine.registers[read.key, default: 0], at: now)
                result.readsChecked += 1
            } else {
                waiting.append(read)
            }
        }
        node.readyReads = waiting
    }

    /// A crash: reads in progress there never happened (fail). Writes stay pending
    /// until some node applies their index.
    func abandonClientOperations(_ k: Int) {
        let node = nodes[k]
        for context in node.pendingReads.keys.sorted() {
            history.complete(OperationID(Int(context)), status: .fail, at: now)
        }
        for read in node.readyReads { history.complete(read.op, status: .fail, at: now) }
        node.pendingReads = [:]
        node.readyReads = []
    }

    /// Clients give up on a read after 30 ticks (it fails: a read has no effect).
    /// Writes are never abandoned: an index, once applied anywhere, decides them; only
    /// writes still pending when the run ends stay `.info`.
    func expireClientOperations() {
        let limit = 30 * Self.tickUnits
        for node in nodes {
            for context in node.pendingReads.keys.sorted() where now - (node.pendingReads[context]?.invoked ?? now) > limit {
                node.pendingReads[context] = nil
                history.complete(OperationID(Int(context)), status: .fail, at: now)
            }
        }
    }

    /// Checks every register's history; the initial value of a register is 0.
    func checkHistory() {
        let verdict = LinearizabilityChecker.check(history.operations, initialValue: 0, maxStates: 2_000_000)
        for violation in verdict.violations { result.linearizabilityViolations.append(violation.description) }
        for (key, reason) in verdict.unknownKeys { result.linearizabilityViolations.append("key \(key): undecided (\(reason))") }
    }

    // MARK: Snapshots

    /// The node asked for a snapshot: record the state machine at the applied index
    /// and compact the log behind it (keeping a few trailing entries).
    func takeSnapshot(_ k: Int) throws {
        let node = nodes[k]
        guard let core = node.core else { return }
        let index = core.appliedIndex
        guard index == node.machine.appliedIndex else {
            result.unexpectedErrors.append("\(node.id): applied index \(index) != state machine \(node.machine.appliedIndex)")
            return
        }
        try node.storage.createSnapshot(at: index, conf: core.confState, data: try node.machine.snapshotData())
        let upTo = core.compactionIndex(afterSnapshotAt: index)
        if upTo > 0 { try node.storage.compact(upTo: upTo) }
        result.snapshotsTaken += 1
    }

    // MARK: Membership

    /// Proposes one membership change on the leader: add a learner (a new node),
    /// promote a learner, remove a voter (the leader itself sometimes), remove a
    /// learner, or replace a voter through joint consensus.
    func changeMembership() {
        guard let l = currentLeader, let core = nodes[l].core else { return }
        let conf = core.confState
        guard !conf.isJoint else { return }
        let voters = conf.voters.sorted(), learners = conf.learners.sorted()
        func pick(_ list: [NodeID]) -> NodeID { list[Int(rng.next() % UInt64(list.count))] }
        var change: ConfChange?
        switch rng.next() % 5 {
        case 0 where learners.isEmpty && voters.count + learners.count < 7:
            change = ConfChange([ConfChangeSingle(.addLearner, addNode())])
        case 1 where !learners.isEmpty && voters.count < 5:
            change = ConfChange([ConfChangeSingle(.addVoter, pick(learners))])
        case 2 where voters.count > 3:
            let victim = rng.next() % 3 == 0 ? core.id : pick(voters)
            change = ConfChange([ConfChangeSingle(.removeNode, victim)])
        case 3 where !learners.isEmpty:
            if rng.next() % 2 == 0 {
                change = ConfChange([ConfChangeSingle(.removeNode, pick(learners))])
            } else {
                change = ConfChange([ConfChangeSingle(.addVoter, pick(learners)), ConfChangeSingle(.removeNode, pick(voters))])
            }
        case 4 where !learners.isEmpty:
            change = ConfChange([ConfChangeSingle(.addVoter, pick(learners))], forceJoint: true)
        default:
            if learners.isEmpty && voters.count < 5 { change = ConfChange([ConfChangeSingle(.addLearner, addNode())]) }
        }
        guard let change else { return }
        trace.record(now, "conf-change", l, UInt64(change.changes.count))
        input(l, .confChange(change))
    }

    /// Creates and starts a new node with empty storage; it learns the configuration
    /// from the leader.
    func addNode() -> NodeID {
        let id = NodeID("n\(ids.count + 1)")
        ids.append(id)
        nodes.append(Node(id: id, storage: MemoryStorage()))
        start(nodes.count - 1)
        return id
    }

    /// A configuration change was applied on node `k`. Counted once, on the leader
    /// that applied it; members it removed are retired shortly after.
    func configurationApplied(_ k: Int, from before: ConfState, to after: ConfState, wasLeader: Bool) {
        guard wasLeader else { return }
        result.confChanges += 1
        let removed = Set(before.allMembers).subtracting(after.allMembers)
        for id in removed.sorted() {
            if let r = index(of: id) { queue.push(.retire(node: r), at: now + 5 * Self.tickUnits) }
        }
    }

    /// Stops a removed node for good.
    func retire(_ k: Int) {
        let node = nodes[k]
        guard !node.retired else { return }
        node.retired = true
        abandonClientOperations(k)
        node.core = nil
        node.pending = nil
        node.inbox = []
        node.incarnation += 1
        trace.record(now, "retire", k)
    }

    // MARK: Leadership transfer

    func startTransfer() {
        guard let l = currentLeader, let core = nodes[l].core else { return }
        let candidates = core.confState.voters.sorted().filter { $0 != core.id }
        guard !candidates.isEmpty else { return }
        let target = candidates[Int(rng.next() % UInt64(candidates.count))]
        trace.record(now, "transfer", l, UInt64(index(of: target) ?? 0))
        input(l, .transfer(target))
        pendingTransfer = (target, core.term)
    }
}
