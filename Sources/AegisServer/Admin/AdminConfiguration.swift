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
    /// The data directory, whose file system the `disk` check watches (`nil`: not watched).
    public var dataDirectory: String?
    /// The `disk` check warns when the data directory's file system has less free space
    /// than this, in bytes. Default 1 GiB.
    public var minFreeDiskBytes: UInt64
    /// The `wal-fsync` check warns when one of the recent WAL fsyncs took longer than
    /// this. Default 100 ms.
    public var walFsyncWarning: Duration
    /// The `wal-fsync` check fails when the recent WAL fsync average is above this.
    /// Default 2 s.
    public var walFsyncFailure: Duration

    /// Creates a configuration; see each property for its default.
    public init(host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil,
                maxReadyApplyLag: UInt64 = 1000, maxBodySize: Int = 2 << 20,
                certificateExpiryWarning: Duration = .seconds(14 * 86_400), dataDirectory: String? = nil,
                minFreeDiskBytes: UInt64 = 1 << 30, walFsyncWarning: Duration = .milliseconds(100),
                walFsyncFailure: Duration = .seconds(2)) {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.maxReadyApplyLag = maxReadyApplyLag
        self.maxBodySize = maxBodySize
        self.certificateExpiryWarning = certificateExpiryWarning
        self.dataDirectory = dataDirectory
        self.minFreeDiskBytes = minFreeDiskBytes
        self.walFsyncWarning = walFsyncWarning
        self.walFsyncFailure = walFsyncFailure
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
