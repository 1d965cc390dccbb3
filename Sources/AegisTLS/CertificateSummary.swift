public import Foundation
internal import SwiftASN1
public import X509

/// What a certificate says, in words: for tools (`aegis certs show`), logs and the
/// admin API.
public struct CertificateSummary: Sendable, Hashable, CustomStringConvertible {
    /// The subject, for example `O=Aegis,CN=node1`.
    public var subject: String
    /// The issuer (the CA's subject).
    public var issuer: String
    /// The subject alternative names, as `DNS:node1` and `IP:127.0.0.1`.
    public var alternativeNames: [String]
    /// The start of the validity.
    public var notValidBefore: Date
    /// The end of the validity.
    public var notValidAfter: Date
    /// Whether the certificate may sign others.
    public var isCertificateAuthority: Bool

    /// Describes `certificate`.
    public init(_ certificate: Certificate) {
        subject = "\(certificate.subject)"
        issuer = "\(certificate.issuer)"
        notValidBefore = certificate.notValidBefore
        notValidAfter = certificate.notValidAfter
        if case .isCertificateAuthority = try? certificate.extensions.basicConstraints {
            isCertificateAuthority = true
        } else {
            isCertificateAuthority = false
        }
        let names = (try? certificate.extensions.subjectAlternativeNames).map { Array($0) } ?? []
        alternativeNames = names.map(Self.describe)
    }

    /// Describes every certificate in the PEM file at `path`.
    ///
    /// - Throws: `TLSError` when the file cannot be read or holds no certificate.
    public static func read(path: String) throws(TLSError) -> [CertificateSummary] {
        try PEMParsing.certificates(in: PEMFile.read(path, what: "certificate"), path: path).map(CertificateSummary.init)
    }

    /// Days from `now` to ``notValidAfter`` (negative once expired).
    public func daysLeft(now: Date = Date()) -> Double {
        notValidAfter.timeIntervalSince(now) / 86_400
    }

    public var description: String {
        "\(subject) names=[\(alternativeNames.joined(separator: ", "))] issuer=\(issuer) valid \(notValidBefore) to \(notValidAfter)"
    }

    private static func describe(_ name: GeneralName) -> String {
        switch name {
        case .dnsName(let dnsName):
            return "DNS:\(dnsName)"
        case .ipAddress(let octets):
            let bytes = Array(octets.bytes)
            if bytes.count == 4 { return "IP:" + bytes.map(String.init).joined(separator: ".") }
            guard bytes.count == 16 else { return "IP:?" }
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return "IP:" + groups.joined(separator: ":")
        case .uniformResourceIdentifier(let uri):
            return "URI:\(uri)"
        case .rfc822Name(let mail):
            return "email:\(mail)"
        default:
            return "\(name)"
        }
    }
}

extension IssuedCertificate {
    /// What the issued certificate says.
    public var summary: CertificateSummary { CertificateSummary(certificate) }
}

extension CertificateAuthority {
    /// What the CA certificate says.
    public var summary: CertificateSummary { CertificateSummary(certificate) }
}
