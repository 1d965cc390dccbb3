/// How a `RESPServer` listens and whom it serves.
public struct RESPServerConfiguration: Sendable, Hashable {
    /// The address to bind. Default `127.0.0.1`.
    public var host: String
    /// The port to bind; 0 picks a free port (see `RESPServer`'s `onListening`).
    /// Default 6379.
    public var port: Int
    /// The password clients must send with `AUTH` (or `HELLO … AUTH`) before any
    /// other command; `nil` for none.
    public var password: String?
    /// Redis's protected mode: with no password configured, connections from
    /// addresses other than loopback get `-DENIED` and are closed. Default `true`.
    /// Turn it off only behind a firewall you trust.
    public var protectedMode: Bool
    /// Limits on what one connection may send.
    public var limits: RESPLimits
    /// The listen backlog. Default 256.
    public var backlog: Int32

    /// Creates a configuration; see each property for its default.
    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, protectedMode: Bool = true,
                limits: RESPLimits = RESPLimits(), backlog: Int32 = 256) {
        self.host = host
        self.port = port
        self.password = password
        self.protectedMode = protectedMode
        self.limits = limits
        self.backlog = backlog
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
