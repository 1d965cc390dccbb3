import AegisKV

/// The Redis-style error replies of the RESP server.
///
/// Errors from the cluster (see `BackendError`):
/// - `-CLUSTERDOWN no leader elected (last known leader: node2 at 127.0.0.1:7002); retry shortly`
///   while no leader is known; nothing was applied.
/// - `-TRYAGAIN not the leader and forwarding to the leader failed (leader: node2 at 127.0.0.1:7002); …`
///   when this node could not forward the command to the leader; nothing was applied.
/// - `-TIMEOUT …` when the outcome is unknown: a write may still be applied.
/// - `-UNAVAILABLE …` while the node is starting, shutting down or its storage failed.
/// - `-TRYAGAIN the node is overloaded …` when the node's request queue is full;
///   nothing was applied.
/// - `-TRYAGAIN the write was not committed because leadership changed; …` when another
///   entry took the write's log position after a leadership change; nothing was applied.
/// - `-READONLY You can't write against a read only replica. primary: HOST:PORT[,…] (…)`
///   for a write to a DR standby or fenced cluster (the primary's client addresses), or
///   to a primary whose write lease expired (`primary: unknown`); nothing was applied.
enum RESPError {
    static let notInteger = RESPValue.error("ERR value is not an integer or out of range")
    static let overflow = RESPValue.error("ERR increment or decrement would overflow")
    static let syntax = RESPValue.error("ERR syntax error")
    static let noAuth = RESPValue.error("NOAUTH Authentication required.")
    static let wrongPass = RESPValue.error("WRONGPASS invalid username-password pair or user is disabled.")
    static let authWithoutPassword = RESPValue.error(
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    static let execAbort = RESPValue.error("EXECABORT Transaction discarded because of previous errors.")

    static func invalidExpireTime(_ command: String) -> RESPValue {
        .error("ERR invalid expire time in '\(command.lowercased())' command")
    }

    static func wrongArity(_ name: String) -> RESPValue {
        .error("ERR wrong number of arguments for '\(name.lowercased())' command")
    }

    static func unknownCommand(_ name: String, arguments: ArraySlice<String>) -> RESPValue {
        let shown = arguments.prefix(8).map { "'\($0.prefix(128))' " }.joined()
        return .error("ERR unknown command '\(name.prefix(128))', with args beginning with: \(shown)")
    }

    static func unknownSubcommand(_ sub: String, of command: String) -> RESPValue {
        .error("ERR unknown subcommand '\(sub.prefix(128))'. Try \(command) HELP.")
    }

    /// The reply for a command the state machine refused.
    static func reply(for error: KVError) -> RESPValue {
        switch error {
        case .notAnInteger: return notInteger
        case .wrongType: return .error("WRONGTYPE Operation against a key holding the wrong kind of value")
        case .hashValueNotInteger: return .error("ERR hash value is not an integer")
        case .incrementOverflow: return overflow
        case .emptyKey: return .error("ERR empty keys are not supported; keys need at least one byte")
        case .keyTooLarge(let size, let limit): return .error("ERR key too large: \(size) bytes, the limit is \(limit)")
        case .valueTooLarge(let size, let limit): return .error("ERR value too large: \(size) bytes, the limit is \(limit)")
        case .sessionExpired: return .error("SESSIONEXPIRED \(error.description)")
        case .sessionWindowFull: return .error("SESSIONWINDOW \(error.description)")
        case .noSuchKey: return .error("ERR no such key")
        case .invalidExpireTime: return .error("ERR invalid expire time in command")
        case .replyTooLarge(let limit):
            return .error("ERR more than \(limit) keys match (RESPLimits.maxKeysReply, --max-keys-reply); use SCAN")
        case .readOnly: return .error("READONLY \(error.description)")
        default: return .error("ERR \(error.description)")
        }
    }

    /// The reply for a request the backend could not run.
    static func reply(for error: BackendError) -> RESPValue {
        switch error {
        case .noLeader(let last):
            let known = last.map { "last known leader: \($0)" } ?? "no leader known yet"
            return .error("CLUSTERDOWN no leader elected (\(known)); retry shortly")
        case .notLeader(let leader):
            let known = leader.map { "leader: \($0)" } ?? "leader unknown"
            return .error("TRYAGAIN not the leader and forwarding to the leader failed (\(known)); retry, or connect to the leader")
        case .timeout(let milliseconds):
            return .error("TIMEOUT no reply from the cluster within \(milliseconds) ms; a write may still be applied, so read before retrying")
        case .unavailable(let why):
            return .error("UNAVAILABLE node unavailable: \(why)")
        case .command(let kvError):
            return reply(for: kvError)
        case .rejected(let why):
            // A DR refusal (standby, fenced, or a primary without its write lease) names the primary.
            if let start = why.range(of: "READONLY ") { return .error(String(why[start.lowerBound...])) }
            return .error("ERR request rejected: \(why)")
        case .overloaded(let why):
            return .error("TRYAGAIN \(why); nothing was applied")
        case .notCommitted:
            return .error("TRYAGAIN \(error.description)")
        }
    }
}
