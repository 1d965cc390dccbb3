public import Foundation
public import X509
internal import SwiftASN1

/// A certificate issued by a ``CertificateAuthority``, with its private key and the CA
/// certificate: everything one node (or client) needs.
public struct IssuedCertificate: Sendable {
    /// The node ID (or client name) the certificate was issued to.
    public let name: String
    /// The certificate.
    public let certificate: Certificate
    /// The certificate's private key.
    let privateKey: Certificate.PrivateKey
    /// The certificate of the CA that signed it.
    public let caCertificate: Certificate

    /// The default validity of node and client certificates: one year.
    public static let defaultValidity = Duration.seconds(365 * 86_400)

    init(name: String, certificate: Certificate, privateKey: Certificate.PrivateKey, caCertificate: Certificate) {
        self.name = name
        self.certificate = certificate
        self.privateKey = privateKey
        self.caCertificate = caCertificate
    }

    /// When the certificate stops being valid.
    public var expiresAt: Date { certificate.notValidAfter }

    /// The certificate in PEM form.
    public func certificatePEM() throws(TLSError) -> String { try PEMParsing.pem(of: certificate) }

    /// The private key in PEM form (PKCS#8). Handle with care.
    public func privateKeyPEM() throws(TLSError) -> String { try PEMParsing.pem(of: privateKey) }

    /// Writes `ca.pem` (0644), `<name>.pem` (0644) and `<name>-key.pem` (0600) into
    /// `directory`, creating it when missing, and returns where they are.
    ///
    /// An existing `ca.pem` that holds the same CA certificate is left as it is, so
    /// several nodes can be written into one directory.
    ///
    /// - Throws: `TLSError(.writeFailed)` when a file exists (and, for `ca.pem`, holds
    ///   another certificate) and `overwrite` is false.
    @discardableResult
    public func write(to directory: String, overwrite: Bool = false) throws(TLSError) -> TLSFiles {
        try PEMFile.createDirectory(directory)
        let files = TLSFiles(directory: directory, name: name)
        let caPEM = try PEMParsing.pem(of: caCertificate)
        let existingCA = FileManager.default.fileExists(atPath: files.caPath)
            ? try? PEMFile.read(files.caPath, what: "CA certificate") : nil
        if existingCA != caPEM {
            try PEMFile.writeAtomically(caPEM, to: files.caPath, mode: PEMFile.certificateMode, overwrite: overwrite)
        }
        try PEMFile.writeAtomically(privateKeyPEM(), to: files.keyPath, mode: PEMFile.keyMode, overwrite: overwrite)
        try PEMFile.writeAtomically(certificatePEM(), to: files.certificatePath, mode: PEMFile.certificateMode, overwrite: overwrite)
        return files
    }
}

/// Parsing and serialising PEM with swift-certificates.
enum PEMParsing {
    /// Every certificate in `text`, in order.
    ///
    /// - Throws: `TLSError(.invalidCertificate)` when there is none or one cannot be parsed.
    static func certificates(in text: String, path: String) throws(TLSError) -> [Certificate] {
        let documents = try TLSError.wrapping(.invalidCertificate, "\(path) is not a valid PEM file") {
            try PEMDocument.parseMultiple(pemString: text)
        }
        var certificates: [Certificate] = []
        for document in documents where document.discriminator == "CERTIFICATE" {
            certificates.append(try TLSError.wrapping(.invalidCertificate, "\(path) holds an invalid certificate") {
                try Certificate(pemDocument: document)
            })
        }
        guard !certificates.isEmpty else {
            throw TLSError(.invalidCertificate, "\(path) holds no certificate (expected '-----BEGIN CERTIFICATE-----')")
        }
        return certificates
    }

    /// The private key in `text`: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
    /// PKCS#1 (`RSA PRIVATE KEY`).
    static func privateKey(in text: String, path: String) throws(TLSError) -> Certificate.PrivateKey {
        let documents = try TLSError.wrapping(.invalidPrivateKey, "\(path) is not a valid PEM file") {
            try PEMDocument.parseMultiple(pemString: text)
        }
        let keys = documents.filter { $0.discriminator.hasSuffix("PRIVATE KEY") }
        guard keys.count == 1, let document = keys.first else {
            throw TLSError(.invalidPrivateKey,
                           "\(path) must hold exactly one private key (found \(keys.count)); expected '-----BEGIN PRIVATE KEY-----'")
        }
        return try TLSError.wrapping(.invalidPrivateKey, "\(path) holds an invalid or unsupported private key") {
            try Certificate.PrivateKey(pemDocument: document)
        }
    }

    static func pem(of certificate: Certificate) throws(TLSError) -> String {
        try TLSError.wrapping(.configurationFailed, "cannot encode a certificate as PEM") {
            try certificate.serializeAsPEM().pemString + "\n"
        }
    }

    static func pem(of key: Certificate.PrivateKey) throws(TLSError) -> String {
        try TLSError.wrapping(.configurationFailed, "cannot encode a private key as PEM") {
            try key.serializeAsPEM().pemString + "\n"
        }
    }
}
