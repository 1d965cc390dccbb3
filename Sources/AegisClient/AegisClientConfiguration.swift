public import NIOSSL

/// A node's client (RESP) address.
public struct AegisEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address.
    public var host: String
    /// The TCP port.
    public var port: Int

    /// Creates an endpoint.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 as `[::1]:7001`); `nil` if it is not one.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1 ... 65_535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How an `AegisClient` connects, routes and retries. Every bound on memory and time
/// is a setting here.
public struct AegisClientConfiguration: Sendable {
    /// The nodes to start from (any subset of the cluster; the leader is discovered).
    public var endpoints: [AegisEndpoint]
    /// TLS for every connection (`nil`: plain TCP). The server's certificate must name
    /// the host it is reached at (host names are checked; IP addresses are verified
    /// against the certificate's IP entries).
    public var tls: TLSConfiguration?
    /// The ACL user to authenticate as (`nil`: the default user).
    public var username: String?
    /// The password (`nil`: no AUTH).
    public var password: String?
    /// Send commands to the leader (learned from `INFO replication`) rather than to any
    /// node. Followers forward writes and linearizable reads themselves, so this only
    /// saves a hop; it is on by default.
    public var followLeader = true
    /// Open connections per node; commands are spread over them.
    public var connectionsPerNode = 2
    /// Commands awaiting their reply on one connection; more fail with
    /// `AegisClientError.tooManyPendingRequests` instead of queueing without bound.
    public var maxPendingPerConnection = 4_096
    /// How long to wait for a connection.
    public var connectTimeout: Duration = .seconds(2)
    /// How long to wait for a reply before the connection is closed and the command
    /// counted as timed out (its outcome unknown).
    public var requestTimeout: Duration = .seconds(5)
    /// How long a command keeps being retried (after leader changes, refused
    /// connections, timeouts of retryable commands) before its last error is thrown.
    public var retryWindow: Duration = .seconds(15)
    /// The first pause between retries; it doubles up to `maxRetryDelay`.
    public var retryDelay: Duration = .milliseconds(20)
    /// The longest pause between retries.
    public var maxRetryDelay: Duration = .milliseconds(500)
    /// Send writes through a client session (`AEGIS.SESSION`, `AEGIS.EXACTLY`) so that a
    /// write retried after an unknown outcome is applied at most once. When off, a
    /// write whose outcome is unknown is not retried: it throws
    /// `AegisClientError.unknownOutcome`.
    public var exactlyOnceWrites = true
    /// The most events a watch (``AegisClient/watch(prefix:from:)``) holds for its
    /// consumer; a consumer that falls behind pauses the watch's connection. Default 1,024.
    public var watchBufferEvents = 1_024

    /// Creates a configuration for `endpoints`.
    public init(endpoints: [AegisEndpoint], tls: TLSConfiguration? = nil, username: String? = nil, password: String? = nil) {
        self.endpoints = endpoints
        self.tls = tls
        self.username = username
        self.password = password
    }
}
