public import Foundation
public import NIOSSL
public import X509

/// How a TLS server treats client certificates.
public enum ClientAuthentication: Sendable, Hashable, CaseIterable {
    /// Clients are not asked for a certificate (RESP and HTTPS with passwords or tokens).
    case none
    /// A client may present a certificate; if it does, it must chain to the CA.
    case optional
    /// A client must present a certificate that chains to the CA (mutual TLS, the peer port).
    case required

    var certificateVerification: CertificateVerification {
        switch self {
        case .none: return .none
        case .optional: return .optionalVerification
        case .required: return .noHostnameVerification
        }
    }
}

/// The loaded and checked contents of a ``TLSFiles`` bundle: trusted CA certificates,
/// this side's certificate chain and private key, ready to build NIOSSL configurations.
///
/// ``load(_:now:)`` checks, before anything uses the files, that each parses, that the
/// key belongs to the certificate, that the certificate is signed by one of the CA
/// certificates, and that every certificate is valid at `now`.
public struct TLSMaterial: Sendable {
    /// The files this was loaded from.
    public let files: TLSFiles
    /// The trusted CA certificates (from ``TLSFiles/caPath``).
    public let trustRoots: [Certificate]
    /// This side's certificate followed by any intermediates (from ``TLSFiles/certificatePath``).
    public let certificateChain: [Certificate]

    let sslTrustRoots: [NIOSSLCertificate]
    let sslCertificateChain: [NIOSSLCertificate]
    let sslPrivateKey: NIOSSLPrivateKey

    /// This side's (leaf) certificate.
    public var certificate: Certificate { certificateChain[0] }

    /// The DNS names in the certificate's subject alternative names; for a node
    /// certificate the first is the node ID.
    public var identities: [String] { PeerIdentity.names(in: certificate) }

    /// When the first certificate that matters expires: the earliest `notAfter` of the
    /// certificate chain and the trusted CA certificates. Export it as a metric
    /// (seconds since 1970) and warn ahead of it (see ``expiryStatus(warningWindow:now:)``).
    public var expiresAt: Date {
        (certificateChain + trustRoots).map(\.notValidAfter).min() ?? certificate.notValidAfter
    }

    /// Days until ``expiresAt`` (fractional; negative once expired).
    public func daysUntilExpiry(now: Date = Date()) -> Double {
        expiresAt.timeIntervalSince(now) / 86_400
    }

    /// Whether ``expiresAt`` is past, within `warningWindow`, or further away.
    public func expiryStatus(warningWindow: Duration = CertificateExpiry.defaultWarningWindow,
                             now: Date = Date()) -> CertificateExpiry {
        CertificateExpiry(expiresAt: expiresAt, warningWindow: warningWindow, now: now)
    }

    /// Reads and checks `files`.
    ///
    /// - Parameter now: the time certificates must be valid at.
    /// - Throws: `TLSError` naming the file and the problem: unreadable, not PEM,
    ///   key mismatch, not signed by the CA, expired or not yet valid.
    public static func load(_ files: TLSFiles, now: Date = Date()) throws(TLSError) -> TLSMaterial {
        let caText = try PEMFile.read(files.caPath, what: "CA certificate")
        let chainText = try PEMFile.read(files.certificatePath, what: "certificate")
        let keyText = try PEMFile.read(files.keyPath, what: "private key")
        let roots = try PEMParsing.certificates(in: caText, path: files.caPath)
        let chain = try PEMParsing.certificates(in: chainText, path: files.certificatePath)
        let key = try PEMParsing.privateKey(in: keyText, path: files.keyPath)
        guard key.publicKey == chain[0].publicKey else {
            throw TLSError(.keyMismatch, "the key in \(files.keyPath) does not belong to the certificate in \(files.certificatePath)")
        }
        try checkSignatures(chain: chain, roots: roots, files: files)
        for (certificate, path) in chain.map({ ($0, files.certificatePath) }) + roots.map({ ($0, files.caPath) }) {
            try checkValidity(certificate, path: path, now: now)
        }
        let sslRoots = try TLSError.wrapping(.invalidCertificate, "NIOSSL cannot load \(files.caPath)") {
            try NIOSSLCertificate.fromPEMBytes(Array(caText.utf8))
        }
        let sslChain = try TLSError.wrapping(.invalidCertificate, "NIOSSL cannot load \(files.certificatePath)") {
            try NIOSSLCertificate.fromPEMBytes(Array(chainText.utf8))
        }
        let sslKey = try TLSError.wrapping(.invalidPrivateKey, "NIOSSL cannot load \(files.keyPath)") {
            try NIOSSLPrivateKey(bytes: Array(keyText.utf8), format: .pem)
        }
        return TLSMaterial(files: files, trustRoots: roots, certificateChain: chain,
                           sslTrustRoots: sslRoots, sslCertificateChain: sslChain, sslPrivateKey: sslKey)
    }

    /// A server configuration: this side's certificate and key, TLS 1.2 or newer, and
    /// client certificates verified against the CA as `clientAuthentication` says.
    public func makeServerConfiguration(clientAuthentication: ClientAuthentication = .none) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: sslCertificateChain.map { .certificate($0) }, privateKey: .privateKey(sslPrivateKey))
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(sslTrustRoots)
        configuration.certificateVerification = clientAuthentication.certificateVerification
        return configuration
    }

    /// A server configuration; `requireClientCertificate` selects mutual TLS.
    public func makeServerConfiguration(requireClientCertificate: Bool) -> TLSConfiguration {
        makeServerConfiguration(clientAuthentication: requireClientCertificate ? .required : .none)
    }

    /// A client configuration: trusts only the CA, presents this side's certificate
    /// (for servers that ask, as peers do), TLS 1.2 or newer.
    ///
    /// - Parameter verifyHostname: whether the server's certificate must name the host
    ///   the client connects to (the `serverHostname` of the `NIOSSLClientHandler`).
    ///   The peer transport turns it off and checks the node ID itself.
    public func makeClientConfiguration(verifyHostname: Bool = true) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.trustRoots = .certificates(sslTrustRoots)
        configuration.certificateChain = sslCertificateChain.map { .certificate($0) }
        configuration.privateKey = .privateKey(sslPrivateKey)
        configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        return configuration
    }

    /// Every certificate of `chain` must be signed by the next one, and the last by a root.
    private static func checkSignatures(chain: [Certificate], roots: [Certificate], files: TLSFiles) throws(TLSError) {
        for (index, certificate) in chain.enumerated() {
            let issuers = index + 1 < chain.count ? [chain[index + 1]] : roots
            let signed = issuers.contains { issuer in
                issuer.subject == certificate.issuer && issuer.publicKey.isValidSignature(certificate.signature, for: certificate)
            }
            guard signed else {
                let subject = "\(certificate.subject)"
                let source = index + 1 < chain.count ? "the next certificate in \(files.certificatePath)" : "a CA in \(files.caPath)"
                throw TLSError(.untrustedCertificate,
                               "the certificate '\(subject)' in \(files.certificatePath) is not signed by \(source); was it issued by another CA?")
            }
        }
    }

    private static func checkValidity(_ certificate: Certificate, path: String, now: Date) throws(TLSError) {
        if now > certificate.notValidAfter {
            throw TLSError(.expired, "the certificate '\(certificate.subject)' in \(path) expired at \(certificate.notValidAfter)")
        }
        if now < certificate.notValidBefore {
            throw TLSError(.notYetValid,
                           "the certificate '\(certificate.subject)' in \(path) is valid from \(certificate.notValidBefore) (check the clock)")
        }
    }
}

/// How close a certificate is to its expiry, for health checks.
public enum CertificateExpiry: Sendable, Hashable {
    /// Valid for longer than the warning window.
    case valid(daysLeft: Double)
    /// Valid, but expires within the warning window: rotate it.
    case expiringSoon(daysLeft: Double)
    /// Expired: peers and clients refuse it.
    case expired(daysAgo: Double)

    /// Thirty days.
    public static let defaultWarningWindow = Duration.seconds(30 * 86_400)

    /// Classifies `expiresAt` as seen at `now`.
    public init(expiresAt: Date, warningWindow: Duration, now: Date) {
        let days = expiresAt.timeIntervalSince(now) / 86_400
        let windowDays = Double(warningWindow.components.seconds) / 86_400
        if days <= 0 {
            self = .expired(daysAgo: -days)
        } else if days <= windowDays {
            self = .expiringSoon(daysLeft: days)
        } else {
            self = .valid(daysLeft: days)
        }
    }

    /// A sentence for health output, or `nil` when valid.
    public var warning: String? {
        switch self {
        case .valid: return nil
        case .expiringSoon(let days):
            return "the TLS certificate expires in \(String(format: "%.1f", days)) days; issue a new one and reload (SIGHUP)"
        case .expired(let days):
            return "the TLS certificate expired \(String(format: "%.1f", days)) days ago; peers and clients refuse it"
        }
    }
}
