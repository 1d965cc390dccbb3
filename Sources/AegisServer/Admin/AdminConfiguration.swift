public import Foundation

/// How an `AdminServer` listens and what it requires.
public struct AdminServerConfiguration: Sendable, Hashable {
    /// The address to bind. Default `127.0.0.1`.
    public var host: String
    /// The port to bind; 0 picks a free port. Default 8080.
    public var port: Int
    /// The bearer token every endpoint but `/livez`, `/readyz`, `/healthz` (without
    /// `?verbose`) and `/metrics` requires (`Authorization: Bearer <token>`), on every
    /// address, loopback included. `nil`: those endpoints answer 403, saying how to set
    /// one.
    public var adminToken: String?
    /// `/healthz` warns this long before a certificate expires. Default 14 days.
    public var certificateExpiryWarning: Duration
    /// `/readyz` fails while this node has more than this many committed entries not
    /// yet applied. Default 1000.
    public var maxReadyApplyLag: UInt64
    /// The largest request body accepted (a `PUT /v1/kv/{key}` value), in bytes.
    /// Default 2 MiB.
    public var maxBodySize: Int

    /// Creates a configuration; see each property for its default.
    public init(host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil,
                maxReadyApplyLag: UInt64 = 1000, maxBodySize: Int = 2 << 20,
                certificateExpiryWarning: Duration = .seconds(14 * 86_400)) {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.maxReadyApplyLag = maxReadyApplyLag
        self.maxBodySize = maxBodySize
        self.certificateExpiryWarning = certificateExpiryWarning
    }
}

/// A certificate the node serves with, and when it expires: for
/// `aegis_tls_certificate_expiry_seconds` and the `tls-certificates` health check.
public struct ServedCertificate: Sendable, Hashable {
    /// What the certificate is for (`node`, `ca`, …).
    public var name: String
    /// The end of its validity.
    public var notValidAfter: Date

    /// Creates an entry.
    public init(name: String, notValidAfter: Date) {
        self.name = name
        self.notValidAfter = notValidAfter
    }
}
