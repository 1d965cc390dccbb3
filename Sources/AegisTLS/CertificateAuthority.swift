public import Foundation
internal import Crypto
internal import SwiftASN1
public import X509

/// A cluster's certificate authority: a self-signed ECDSA P-256 certificate and its key,
/// which signs the certificates of the cluster's nodes and clients.
///
/// ```swift
/// let ca = try CertificateAuthority.create(commonName: "prod cluster CA")
/// try ca.write(to: "/etc/aegis/ca")                       // ca.pem, ca-key.pem (0600)
/// let node1 = try ca.issue(nodeID: "node1", hosts: ["10.0.0.1", "node1.internal"])
/// let files = try node1.write(to: "/etc/aegis/node1")     // ca.pem, node1.pem, node1-key.pem
/// ```
///
/// Keep `ca-key.pem` off the nodes: they need only `ca.pem` and their own pair.
public struct CertificateAuthority: Sendable {
    /// The CA certificate (self-signed), the trust root of the cluster.
    public let certificate: Certificate
    /// The CA key; it signs what ``issue(nodeID:hosts:validity:now:)`` issues.
    let privateKey: Certificate.PrivateKey

    /// The default validity of a CA: ten years.
    public static let defaultValidity = Duration.seconds(10 * 365 * 86_400)
    /// How far before `now` a new certificate starts to be valid, so that peers whose
    /// clocks run a little behind accept it.
    static let backdating: TimeInterval = 300

    init(certificate: Certificate, privateKey: Certificate.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Creates a new CA with a fresh P-256 key.
    ///
    /// - Parameters:
    ///   - commonName: the CA's subject common name, as tools show it.
    ///   - validity: how long the CA certificate is valid (at least one hour).
    ///   - now: the start of the validity (backdated five minutes for clock skew).
    /// - Throws: `TLSError(.invalidArgument)` for an empty name or a short validity.
    public static func create(commonName: String = "Aegis cluster CA", validity: Duration = defaultValidity,
                              now: Date = Date()) throws(TLSError) -> CertificateAuthority {
        guard !commonName.isEmpty else { throw TLSError(.invalidArgument, "the CA common name is empty") }
        let seconds = try validSeconds(validity)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        return try TLSError.wrapping(.configurationFailed, "cannot create the CA certificate") {
            let name = try DistinguishedName {
                OrganizationName("Aegis")
                CommonName(commonName)
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-backdating), notValidAfter: now.addingTimeInterval(seconds),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: key)
            return CertificateAuthority(certificate: certificate, privateKey: key)
        }
    }

    /// Loads a CA written by ``write(to:overwrite:)``: `ca.pem` and `ca-key.pem` in `directory`.
    ///
    /// - Throws: `TLSError` when a file is missing or invalid, or the key is not the certificate's.
    public static func load(from directory: String) throws(TLSError) -> CertificateAuthority {
        try load(certificatePath: PEMFile.path(directory, AegisTLS.caCertificateFileName),
                 keyPath: PEMFile.path(directory, AegisTLS.caKeyFileName))
    }

    /// Loads a CA from its certificate and key files.
    ///
    /// - Throws: `TLSError` when a file is missing or invalid, the key is not the
    ///   certificate's, or the certificate is not a CA.
    public static func load(certificatePath: String, keyPath: String) throws(TLSError) -> CertificateAuthority {
        let certificate = try PEMParsing.certificates(
            in: PEMFile.read(certificatePath, what: "CA certificate"), path: certificatePath)[0]
        let key = try PEMParsing.privateKey(in: PEMFile.read(keyPath, what: "CA key"), path: keyPath)
        guard key.publicKey == certificate.publicKey else {
            throw TLSError(.keyMismatch, "the key in \(keyPath) does not belong to the certificate in \(certificatePath)")
        }
        let constraints = try? certificate.extensions.basicConstraints
        guard case .isCertificateAuthority = constraints else {
            throw TLSError(.invalidCertificate, "\(certificatePath) is not a CA certificate (basic constraints say it cannot sign)")
        }
        return CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Issues a node certificate.
    ///
    /// Its subject alternative names are the node ID as a DNS name, then each host: an
    /// IP address (`"10.0.0.1"`, `"::1"`) becomes an IP address name, anything else a
    /// DNS name. Peers identify a node by the node ID in this list, so do not list
    /// another node's ID as a host. It is valid for TLS servers and clients (peers use
    /// it in both directions).
    ///
    /// - Parameters:
    ///   - nodeID: the node's ID: letters, digits, `-`, `_`, `.`; at most 253 characters.
    ///   - hosts: the addresses clients use to reach the node (for hostname checks of RESP
    ///     and HTTPS clients), for example `["127.0.0.1", "localhost"]`.
    ///   - validity: how long the certificate is valid; clipped to the CA's own expiry.
    ///   - now: the start of the validity (backdated five minutes).
    /// - Throws: `TLSError(.invalidArgument)` for an invalid name or host.
    public func issue(nodeID: String, hosts: [String] = [], validity: Duration = IssuedCertificate.defaultValidity,
                      now: Date = Date()) throws(TLSError) -> IssuedCertificate {
        let names = try SubjectNames.alternativeNames(identity: nodeID, hosts: hosts)
        return try issue(name: nodeID, alternativeNames: names, usages: [.serverAuth, .clientAuth],
                         validity: validity, now: now)
    }

    /// Issues a client certificate (TLS client authentication only) whose common name
    /// and DNS subject alternative name are `name`, for example an operator or a tool.
    ///
    /// - Throws: `TLSError(.invalidArgument)` for an invalid name.
    public func issueClient(name: String, validity: Duration = IssuedCertificate.defaultValidity,
                            now: Date = Date()) throws(TLSError) -> IssuedCertificate {
        let names = try SubjectNames.alternativeNames(identity: name, hosts: [])
        return try issue(name: name, alternativeNames: names, usages: [.clientAuth], validity: validity, now: now)
    }

    private func issue(name: String, alternativeNames: [GeneralName], usages: [ExtendedKeyUsage.Usage],
                       validity: Duration, now: Date) throws(TLSError) -> IssuedCertificate {
        let seconds = try Self.validSeconds(validity)
        let notAfter = min(now.addingTimeInterval(seconds), certificate.notValidAfter)
        guard notAfter > now else {
            throw TLSError(.expired, "the CA certificate expired at \(certificate.notValidAfter); create a new CA")
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let issuerKey = privateKey
        let issuerCertificate = certificate
        return try TLSError.wrapping(.configurationFailed, "cannot issue the certificate for '\(name)'") {
            let subject = try DistinguishedName {
                OrganizationName("Aegis")
                CommonName(name)
            }
            let authorityKeyID = try issuerCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: issuerCertificate.publicKey).keyIdentifier
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
                try ExtendedKeyUsage(usages)
                SubjectAlternativeNames(alternativeNames)
                SubjectKeyIdentifier(hash: key.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-Self.backdating), notValidAfter: notAfter,
                issuer: issuerCertificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: issuerKey)
            return IssuedCertificate(name: name, certificate: certificate, privateKey: key,
                                     caCertificate: issuerCertificate)
        }
    }

    /// The CA certificate in PEM form (the content of `ca.pem`).
    public func certificatePEM() throws(TLSError) -> String {
        try PEMParsing.pem(of: certificate)
    }

    /// Writes `ca.pem` (mode 0644) and `ca-key.pem` (mode 0600) into `directory`,
    /// creating it when missing. Returns the paths written.
    ///
    /// - Throws: `TLSError(.writeFailed)` when a file exists and `overwrite` is false.
    @discardableResult
    public func write(to directory: String, overwrite: Bool = false) throws(TLSError) -> [String] {
        try PEMFile.createDirectory(directory)
        let certificatePath = PEMFile.path(directory, AegisTLS.caCertificateFileName)
        let keyPath = PEMFile.path(directory, AegisTLS.caKeyFileName)
        let keyPEM = try PEMParsing.pem(of: privateKey)
        try PEMFile.writeAtomically(keyPEM, to: keyPath, mode: PEMFile.keyMode, overwrite: overwrite)
        try PEMFile.writeAtomically(certificatePEM(), to: certificatePath, mode: PEMFile.certificateMode, overwrite: overwrite)
        return [certificatePath, keyPath]
    }

    /// `validity` in seconds, refused below one hour.
    static func validSeconds(_ validity: Duration) throws(TLSError) -> TimeInterval {
        let seconds = validity.components.seconds
        guard seconds >= 3600 else {
            throw TLSError(.invalidArgument, "a validity of \(validity) is too short (at least one hour)")
        }
        return TimeInterval(seconds)
    }
}
