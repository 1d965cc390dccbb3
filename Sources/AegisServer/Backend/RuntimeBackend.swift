public import AegisKV
public import AegisRaft
public import AegisReplication

/// The `KVBackend` of a real node: the RESP and HTTP servers talk to a
/// `NodeRuntime` through it.
public struct RuntimeBackend: KVBackend {
    /// The node.
    public let runtime: NodeRuntime
    /// The cluster's ID, reported in status.
    public let clusterID: String?
    /// UNSAFE, for testing the linearizability checker only: serve every read from
    /// this node's local state (as if `stale` were always set), skipping ReadIndex.
    /// A partitioned or lagging node then returns stale values.
    public let unsafeLocalReads: Bool

    /// Wraps a runtime.
    public init(runtime: NodeRuntime, clusterID: String? = nil, unsafeLocalReads: Bool = false) {
        self.runtime = runtime
        self.clusterID = clusterID
        self.unsafeLocalReads = unsafeLocalReads
    }

    public func execute(_ command: Command) async throws(BackendError) -> CommandResult {
        // Refused here, not after it was logged and replicated.
        if let violation = runtime.configuration.limits.violation(in: command) { throw .command(violation) }
        do {
            return try await runtime.execute(command)
        } catch {
            throw map(error)
        }
    }

    public func execute(_ commands: [Command]) async -> [Result<CommandResult, BackendError>] {
        let limits = runtime.configuration.limits
        let violations = commands.map { limits.violation(in: $0) }
        guard violations.contains(where: { $0 != nil }) else {
            return await runtime.execute(batch: commands).map { $0.mapError { map($0) } }
        }
        // Propose only the valid commands; the others fail in their places.
        let valid = commands.indices.filter { violations[$0] == nil }
        var proposed = await runtime.execute(batch: valid.map { commands[$0] }).makeIterator()
        return commands.indices.map { index in
            if let violation = violations[index] { return .failure(.command(violation)) }
            return proposed.next().map { $0.mapError { map($0) } } ?? .failure(.unavailable("the node returned no outcome for a command"))
        }
    }

    public func read(_ keys: [Key], stale: Bool) async throws(BackendError) -> [KeyValue?] {
        do {
            return try await runtime.read(keys, stale: stale || unsafeLocalReads)
        } catch {
            throw map(error)
        }
    }

    public func count(stale: Bool) async throws(BackendError) -> Int {
        do {
            return try await runtime.count(stale: stale || unsafeLocalReads)
        } catch {
            throw map(error)
        }
    }

    public func activeActiveConflicts(key: Key?, limit: Int, stale: Bool) async throws(BackendError)
        -> ActiveActiveConflictReport {
        do {
            return try await runtime.activeActiveConflictReport(key: key, limit: limit, stale: stale || unsafeLocalReads)
        } catch {
            throw map(error)
        }
    }

    public func digest() async throws(BackendError) -> (appliedIndex: LogIndex, digest: String) {
        do {
            return try await runtime.digest()
        } catch {
            throw map(error)
        }
    }

    public func status() async -> BackendStatus {
        let s = runtime.status
        let members = s.members.map { m in
            let role: NodeRole
            if !m.isVoter {
                role = .learner
            } else if m.id == s.leader {
                role = .leader
            } else if m.id == s.nodeID {
                role = NodeRole(s.role)
            } else {
                role = .follower
            }
            return MemberStatus(id: m.id, role: role, peerAddress: m.address?.peer ?? "",
                                clientAddress: m.address?.client ?? "", matchIndex: m.match, lag: m.lag,
                                reachable: m.state.map { $0 != .probe }, health: m.health, lastHeard: m.lastHeard)
        }
        let selfIsLearner = s.members.first { $0.id == s.nodeID }.map { !$0.isVoter } ?? false
        var status = BackendStatus(nodeID: s.nodeID, clusterID: clusterID, role: selfIsLearner ? .learner : NodeRole(s.role),
                                   leader: hint(s.leader), term: s.term, commitIndex: s.commitIndex,
                                   appliedIndex: s.appliedIndex, members: members)
        status.cluster = s.cluster
        status.running = s.running
        status.failure = s.failure
        status.diskFull = s.diskFull
        status.fsyncSeconds = s.fsyncSeconds
        status.slowestRecentFsyncSeconds = s.slowestRecentFsyncSeconds
        status.replaying = s.replaying
        status.readMode = unsafeLocalReads ? .unsafeLocal
            : runtime.configuration.raft.readOnlyOption == .leaseBased ? .lease : .safe
        return status
    }

    public func addMember(_ id: NodeID, peerAddress: String, clientAddress: String, asLearner: Bool) async throws(BackendError) {
        do {
            try await runtime.addMember(id, address: MemberAddress(peer: peerAddress, client: clientAddress.isEmpty ? nil : clientAddress),
                                        asLearner: asLearner)
        } catch {
            throw map(error)
        }
    }

    public func promoteMember(_ id: NodeID) async throws(BackendError) {
        do { try await runtime.promoteMember(id) } catch { throw map(error) }
    }

    public func removeMember(_ id: NodeID) async throws(BackendError) {
        do { try await runtime.removeMember(id) } catch { throw map(error) }
    }

    public func transferLeadership(to id: NodeID?) async throws(BackendError) {
        do { try await runtime.transferLeadership(to: id) } catch { throw map(error) }
    }

    public func committedLog(after index: LogIndex, maxCount: Int, maxBytes: Int) async throws(BackendError) -> CommittedEntries {
        do {
            return try await runtime.committedEntries(after: index, maxCount: maxCount, maxBytes: maxBytes)
        } catch {
            throw map(error)
        }
    }

    private func hint(_ id: NodeID?) -> LeaderHint? {
        guard let id else { return nil }
        let address = runtime.status.members.first { $0.id == id }?.address?.client
        return LeaderHint(id: id, clientAddress: address)
    }

    private func map(_ error: any Error) -> BackendError {
        guard let e = error as? ReplicationError else { return .unavailable("\(error)") }
        switch e {
        case .noLeader: return .noLeader(lastKnownLeader: hint(runtime.status.leader))
        case .notLeader(let leader): return .notLeader(leader: hint(leader))
        case .timeout:
            let c = runtime.configuration.requestTimeout.components
            return .timeout(milliseconds: c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
        case .lost: return .notCommitted
        case .rejected(let why): return .rejected(why)
        case .shuttingDown: return .unavailable("the node is shutting down")
        case .storageFailed(let why): return .unavailable("the node stopped after a storage failure: \(why)")
        case .overloaded: return .overloaded(e.description)
        case .diverged: return .unavailable(e.description)
        }
    }
}
