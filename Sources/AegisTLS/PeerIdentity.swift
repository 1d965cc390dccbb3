public import NIOSSL
public import X509

/// Who a certificate says its holder is: the DNS names among its subject alternative
/// names. A node certificate names its node ID there (see
/// ``CertificateAuthority/issue(nodeID:hosts:validity:now:)``), so a peer is the node
/// `X` when its CA-verified certificate lists `X`.
public enum PeerIdentity {
    /// The DNS names in `certificate`'s subject alternative names, in order; empty when
    /// it has none (or the extension cannot be parsed).
    public static func names(in certificate: Certificate) -> [String] {
        guard let alternativeNames = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return alternativeNames.compactMap { name in
            if case .dnsName(let dnsName) = name { return dnsName }
            return nil
        }
    }

    /// The DNS names in the subject alternative names of a certificate NIOSSL received
    /// (for example `NIOSSLHandler.peerCertificate`); empty when it cannot be parsed.
    public static func names(in certificate: NIOSSLCertificate) -> [String] {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return [] }
        return names(in: parsed)
    }

    /// Whether `certificate` names `identity` (exactly, byte for byte) among its DNS
    /// subject alternative names.
    public static func certificate(_ certificate: NIOSSLCertificate, identifies identity: String) -> Bool {
        names(in: certificate).contains(identity)
    }
}
