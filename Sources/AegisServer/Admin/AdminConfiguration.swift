/// How an `AdminServer` listens and what it requires.
public struct AdminServerConfiguration: Sendable, Hashable {
    /// The address to bind. Default `127.0.0.1`.
    public var host: String
    /// The port to bind; 0 picks a free port. Default 8080.
    public var port: Int
    /// The bearer token that mutating endpoints and key reads require
    /// (`Authorization: Bearer <token>`); `nil` leaves them open, so bind loopback
    /// only in that case.
    public var adminToken: String?
    /// `/readyz` fails while this node has more than this many committed entries not
    /// yet applied. Default 1000.
    public var maxReadyApplyLag: UInt64
    /// The largest request body accepted (a `PUT /v1/kv/{key}` value), in bytes.
    /// Default 2 MiB.
    public var maxBodySize: Int

    /// Creates a configuration; see each property for its default.
    public init(host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil,
                maxReadyApplyLag: UInt64 = 1000, maxBodySize: Int = 2 << 20) {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.maxReadyApplyLag = maxReadyApplyLag
        self.maxBodySize = maxBodySize
    }
}
