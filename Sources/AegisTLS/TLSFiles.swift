/// Where the PEM files of one TLS identity are: the trusted CA certificate(s), this
/// side's certificate (chain) and its private key.
///
/// Every Aegis port takes one: the peer port (mutual TLS between nodes), the RESP port
/// and the HTTP admin port. ``TLSMaterial/load(_:now:)`` reads and checks them;
/// ``CertificateStore`` re-reads them on ``CertificateStore/reload()``.
public struct TLSFiles: Sendable, Hashable, CustomStringConvertible {
    /// PEM file with the CA certificate(s) that peers' certificates must chain to.
    public var caPath: String
    /// PEM file with this side's certificate, optionally followed by intermediates.
    public var certificatePath: String
    /// PEM file with this side's private key (PKCS#8, SEC1 or PKCS#1).
    public var keyPath: String

    /// Names the three files.
    public init(caPath: String, certificatePath: String, keyPath: String) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// The files ``IssuedCertificate/write(to:overwrite:)`` writes for `name` in
    /// `directory`: `ca.pem`, `<name>.pem` and `<name>-key.pem`.
    public init(directory: String, name: String) {
        self.init(caPath: PEMFile.path(directory, AegisTLS.caCertificateFileName),
                  certificatePath: PEMFile.path(directory, AegisTLS.certificateFileName(for: name)),
                  keyPath: PEMFile.path(directory, AegisTLS.keyFileName(for: name)))
    }

    public var description: String { "ca=\(caPath) cert=\(certificatePath) key=\(keyPath)" }
}
