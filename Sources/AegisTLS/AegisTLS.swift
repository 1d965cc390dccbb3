/// Certificates and TLS for every Aegis port: a cluster CA, node and client
/// certificates, loading and reloading them, and NIOSSL configurations.
///
/// See the DocC article for the overview; the types are ``CertificateAuthority``,
/// ``IssuedCertificate``, ``TLSFiles``, ``TLSMaterial``, ``CertificateStore`` and
/// ``PeerIdentity``.
public enum AegisTLS {
    /// The name of the CA certificate file that ``CertificateAuthority/write(to:overwrite:)``
    /// and ``IssuedCertificate/write(to:overwrite:)`` create.
    public static let caCertificateFileName = "ca.pem"
    /// The name of the CA private key file that ``CertificateAuthority/write(to:overwrite:)`` creates.
    public static let caKeyFileName = "ca-key.pem"

    /// The certificate file of a node or client named `name`: `<name>.pem`.
    public static func certificateFileName(for name: String) -> String { "\(name).pem" }
    /// The private key file of a node or client named `name`: `<name>-key.pem`.
    public static func keyFileName(for name: String) -> String { "\(name)-key.pem" }
}

/// An error of certificate generation, loading or TLS configuration.
///
/// Messages name the file and say what to do; a failed ``CertificateStore/reload()``
/// changes nothing.
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The category of a TLS error. New codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// A stable number for the category.
        public var rawValue: UInt16
        /// Creates a code from its number.
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// A name, host or validity given by the caller is not acceptable.
        public static let invalidArgument = Code(rawValue: 1)
        /// A file could not be read.
        public static let unreadableFile = Code(rawValue: 2)
        /// A file holds no certificate, or one that cannot be parsed.
        public static let invalidCertificate = Code(rawValue: 3)
        /// A file holds no private key, or one that cannot be parsed.
        public static let invalidPrivateKey = Code(rawValue: 4)
        /// The private key does not belong to the certificate.
        public static let keyMismatch = Code(rawValue: 5)
        /// The certificate is not signed by any of the trusted CA certificates.
        public static let untrustedCertificate = Code(rawValue: 6)
        /// The certificate (or the CA certificate) has expired.
        public static let expired = Code(rawValue: 7)
        /// The certificate (or the CA certificate) is not valid yet.
        public static let notYetValid = Code(rawValue: 8)
        /// A file could not be written (or exists and overwriting was not asked for).
        public static let writeFailed = Code(rawValue: 9)
        /// NIOSSL refused the configuration built from valid files, or signing failed.
        public static let configurationFailed = Code(rawValue: 10)
        /// The certificate does not name the identity (node ID) it must carry.
        public static let identityMismatch = Code(rawValue: 11)

        public var description: String {
            switch self {
            case .invalidArgument: return "invalid-argument"
            case .unreadableFile: return "unreadable-file"
            case .invalidCertificate: return "invalid-certificate"
            case .invalidPrivateKey: return "invalid-private-key"
            case .keyMismatch: return "key-mismatch"
            case .untrustedCertificate: return "untrusted-certificate"
            case .expired: return "expired"
            case .notYetValid: return "not-yet-valid"
            case .writeFailed: return "write-failed"
            case .configurationFailed: return "configuration-failed"
            case .identityMismatch: return "identity-mismatch"
            default: return "code-\(rawValue)"
            }
        }
    }

    /// The category.
    public var code: Code
    /// What happened and what to do about it.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "TLS error (\(code)): \(message)" }
}

extension TLSError {
    /// Runs `body`, turning any error it throws into a `TLSError` with `code` and a
    /// message that starts with `context`.
    static func wrapping<T>(_ code: Code, _ context: @autoclosure () -> String,
                            _ body: () throws -> T) throws(TLSError) -> T {
        do {
            return try body()
        } catch let error as TLSError {
            throw error
        } catch {
            throw TLSError(code, "\(context()): \(error)")
        }
    }
}
