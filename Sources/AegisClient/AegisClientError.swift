/// Why an `AegisClient` command failed.
public enum AegisClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration has no endpoint, or a setting is out of range.
    case invalidConfiguration(String)
    /// No node could be reached within the retry window; the command was not sent.
    case unreachable(String)
    /// The server answered with this error (for example `WRONGTYPE …`); the command
    /// was refused or failed as the server says.
    case server(String)
    /// The command may or may not have been applied: the connection closed or timed
    /// out after it was sent and it could not be retried safely (a write without a
    /// client session, or a session that expired in between). Read before retrying.
    case unknownOutcome(String)
    /// The connection already has `AegisClientConfiguration.maxPendingPerConnection`
    /// commands in flight; nothing was sent.
    case tooManyPendingRequests(Int)
    /// The server's reply does not fit the command (a protocol error).
    case unexpectedReply(String)
    /// The client was shut down.
    case shutDown
    /// A watch needs log entries the server no longer has (compacted into a
    /// snapshot): read the keys again and start a new watch.
    case compacted(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let why): return "invalid client configuration: \(why)"
        case .unreachable(let why): return "no node reachable: \(why)"
        case .server(let text): return text
        case .unknownOutcome(let why): return "outcome unknown (the command may have been applied): \(why)"
        case .tooManyPendingRequests(let limit): return "\(limit) commands already await replies on the connection; nothing was sent"
        case .unexpectedReply(let what): return "unexpected reply: \(what)"
        case .shutDown: return "the client is shut down"
        case .compacted(let why): return "the watch cannot continue: \(why)"
        }
    }
}

/// A connection-level failure, with whether the command may have reached the server.
struct ConnectionFailure: Error, Sendable {
    /// `true` if the bytes may have been sent (the outcome is unknown).
    var maybeSent: Bool
    var reason: String
}
