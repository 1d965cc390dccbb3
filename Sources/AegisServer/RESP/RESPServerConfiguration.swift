/// How a `RESPServer` listens and whom it serves.
public struct RESPServerConfiguration: Sendable, Hashable {
    /// The address to bind. Default `127.0.0.1`.
    public var host: String
    /// The port to bind; 0 picks a free port (see `RESPServer`'s `onListening`).
    /// Default 6379.
    public var port: Int
    /// The password of the `default` user, which clients send with `AUTH password` (or
    /// `HELLO … AUTH default password`) before any other command; `nil` for none. With
    /// an `ACLStore` given to the server, its `default` user wins.
    public var password: String?
    /// Redis's protected mode: while the `default` user needs no password, connections from
    /// addresses other than loopback get `-DENIED` and are closed. Default `true`.
    /// Turn it off only behind a firewall you trust.
    public var protectedMode: Bool
    /// Limits on what one connection may send.
    public var limits: RESPLimits
    /// The listen backlog. Default 256.
    public var backlog: Int32
    /// How failed `AUTH`s are slowed down and when the connection is closed.
    public var authThrottle: RESPAuthThrottle
    /// With TLS (`RESPServer`'s `tls`), a second, plaintext listener, for clients on
    /// the same host: `nil` for none. Serve it on loopback only.
    public var plaintextHost: String?
    /// The plaintext listener's port (0 picks one); see `plaintextHost`.
    public var plaintextPort: Int

    /// Creates a configuration; see each property for its default.
    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, protectedMode: Bool = true,
                limits: RESPLimits = RESPLimits(), backlog: Int32 = 256,
                authThrottle: RESPAuthThrottle = RESPAuthThrottle(), plaintextHost: String? = nil, plaintextPort: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.protectedMode = protectedMode
        self.limits = limits
        self.backlog = backlog
        self.authThrottle = authThrottle
        self.plaintextHost = plaintextHost
        self.plaintextPort = plaintextPort
    }
}

/// The version of Aegis, reported by `INFO` and `HELLO`.
public enum AegisVersion {
    /// This build's version.
    public static let current = "0.1.0"
    /// The Redis version the RESP server reports as `redis_version`: clients gate
    /// features on it, and Aegis answers the commands it supports as this version does.
    public static let redisCompatibility = "7.4.0"
}
