public import AegisKV
public import AegisRaft
public import AegisReplication

/// What the RESP and HTTP admin servers call to run commands and manage the cluster.
///
/// The node runtime conforms to it; tests use an in-memory fake. Every method may be
/// called concurrently from many connections.
///
/// Outcomes of commands:
/// - A command the state machine applied, successfully or not, returns its
///   `CommandResult`; a refusal by the state machine (a failed compare-and-swap, an
///   increment of a non-integer, a value over the size limit) is in `result.error`
///   and consumed a log index like any other command.
/// - A command that was not applied, or whose outcome is unknown, throws a
///   `BackendError`. A backend may also throw `.command(_:)` for a command it refuses
///   before proposing it (for example a key over the size limit, checked locally).
///
/// Followers forward writes and linearizable reads to the leader themselves; the
/// servers only see `.notLeader` when that forwarding failed, and `.noLeader` while
/// no leader is known.
public protocol KVBackend: Sendable {
    /// Runs a command through consensus and waits until it is applied on this node.
    /// `.get` commands are linearizable reads through the log.
    func execute(_ command: Command) async throws(BackendError) -> CommandResult

    /// Runs several commands through consensus, in order, and waits until all of them
    /// are applied; one outcome per command, in the same order. The servers call this
    /// for the consecutive writes of one pipelined batch, so a backend can propose
    /// them together. The default implementation calls `execute(_:)` for each command
    /// in turn.
    func execute(_ commands: [Command]) async -> [Result<CommandResult, BackendError>]

    /// Reads many keys: the record of each key (value and version), `nil` for a key
    /// that does not exist, in the order of `keys`. Linearizable (ReadIndex) unless
    /// `stale`, in which case it returns this node's local state, possibly behind.
    func read(_ keys: [Key], stale: Bool) async throws(BackendError) -> [KeyValue?]

    /// The number of keys; linearizable unless `stale`.
    func count(stale: Bool) async throws(BackendError) -> Int

    /// This node's state machine digest (hexadecimal SHA-256 of its canonical state)
    /// and the applied index it was taken at. Always local, without ReadIndex: two
    /// replicas at the same applied index must report the same digest.
    func digest() async throws(BackendError) -> (appliedIndex: LogIndex, digest: String)

    /// This node's view of the cluster.
    func status() async -> BackendStatus

    /// Adds a member: a learner (non-voting, to be promoted once it caught up) when
    /// `asLearner`, otherwise a voter. Returns when the change is committed.
    func addMember(_ id: NodeID, peerAddress: String, clientAddress: String, asLearner: Bool) async throws(BackendError)

    /// Promotes a learner to a voter. Returns when the change is committed.
    func promoteMember(_ id: NodeID) async throws(BackendError)

    /// Removes a member (voter or learner). Returns when the change is committed.
    func removeMember(_ id: NodeID) async throws(BackendError)

    /// Transfers leadership to `id`, or to the most up-to-date voter when `nil`.
    /// Returns when the transfer completed.
    func transferLeadership(to id: NodeID?) async throws(BackendError)

    /// The committed log entries after `index` on this node (at most `maxCount` and
    /// about `maxBytes`; at least one when any), read locally without a Raft round, for
    /// `AEGIS.WATCH`. Entries compacted away are not returned: `firstIndex` says where
    /// the log starts. The default throws `.unavailable`: the backend has no log.
    func committedLog(after index: LogIndex, maxCount: Int, maxBytes: Int) async throws(BackendError) -> CommittedEntries

    /// The active-active conflict strategies, open manual conflicts, the newest `limit`
    /// audit entries (of `key` when given) and the key's siblings. The default throws
    /// `.unavailable`.
    func activeActiveConflicts(key: Key?, limit: Int, stale: Bool) async throws(BackendError) -> ActiveActiveConflictReport
}

extension KVBackend {
    /// Throws `.unavailable`: this backend keeps no active-active state.
    public func activeActiveConflicts(key: Key?, limit: Int, stale: Bool) async throws(BackendError)
        -> ActiveActiveConflictReport {
        throw .unavailable("this node keeps no active-active conflict state")
    }

    /// Throws `.unavailable`: this backend has no replicated log.
    public func committedLog(after index: LogIndex, maxCount: Int, maxBytes: Int) async throws(BackendError) -> CommittedEntries {
        throw .unavailable("this node has no replicated log to watch")
    }

    /// Calls `execute(_:)` for each command in turn.
    public func execute(_ commands: [Command]) async -> [Result<CommandResult, BackendError>] {
        var results: [Result<CommandResult, BackendError>] = []
        results.reserveCapacity(commands.count)
        for command in commands {
            do {
                results.append(.success(try await execute(command)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }
}
