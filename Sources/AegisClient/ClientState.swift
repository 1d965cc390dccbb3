import AegisRESP

/// The mutable state an `AegisClient` shares between tasks (behind its lock).
struct ClientState: Sendable {
    /// Open connections by node.
    var pools: [AegisEndpoint: [RESPClientConnection]] = [:]
    /// The next connection to use per node (round robin).
    var cursor: [AegisEndpoint: Int] = [:]
    /// The next node to use when the leader is unknown or not followed.
    var nextEndpoint = 0
    /// The leader's client address, when known.
    var leader: AegisEndpoint?
    /// The client session (exactly-once writes), once opened.
    var session: UInt64?
    /// The next sequence number of the session.
    var sequence: UInt64 = 1
    /// Sequence numbers sent and not yet answered.
    var outstanding: Set<UInt64> = []
    var isShutDown = false
    /// What the client has done so far.
    var statistics = AegisClientStatistics()

    /// Uses `id` as the session unless another task opened one first; returns the one in use.
    mutating func adopt(session id: UInt64) -> UInt64 {
        if let session { return session }
        session = id
        sequence = 1
        outstanding = []
        return id
    }

    /// Drops the session `id` (it expired).
    mutating func forgetSession(_ id: UInt64) {
        if session == id { session = nil }
    }

    /// A new sequence number in `session`, marked outstanding.
    mutating func nextSequence(in session: UInt64) -> UInt64 {
        let number = sequence
        sequence += 1
        if self.session == session { outstanding.insert(number) }
        return number
    }

    /// Marks `number` answered (or abandoned).
    mutating func finish(_ number: UInt64, in session: UInt64) {
        if self.session == session { outstanding.remove(number) }
    }

    /// Every sequence number at or below this has been answered.
    func acknowledged(in session: UInt64) -> UInt64 {
        guard self.session == session else { return 0 }
        return (outstanding.min() ?? sequence) - 1
    }
}

/// Counters of an `AegisClient`, for monitoring and tests.
public struct AegisClientStatistics: Sendable, Hashable {
    /// Attempts repeated after a refused connection, a "try again" reply, a lost
    /// connection or a timeout.
    public var retries = 0
    /// Client sessions opened (`AEGIS.SESSION`).
    public var sessionsOpened = 0
    /// Connections opened.
    public var connectionsOpened = 0
    /// Times the leader's address was learned.
    public var leaderDiscoveries = 0
    /// Times a watch resumed on a new connection after its connection ended or failed.
    public var watchReconnects = 0
}
