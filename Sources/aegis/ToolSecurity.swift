import AegisServer
import ArgumentParser
import Foundation
import NIOSSL

/// How the tools find the admin token and the CA to trust: flag, then environment,
/// then the `aegis dev` data folder (so that the tools work against `aegis dev` with
/// no options).
struct ToolSecurityOptions: ParsableArguments {
    @Option(name: [.customLong("admin-token"), .customLong("token")],
            help: ArgumentHelp("The admin token (default: $AEGIS_ADMIN_TOKEN, else the one `aegis dev` keeps in \(DevDefaults.adminTokenPath())).",
                               valueName: "token"))
    var adminToken: String?

    @OptionGroup var tls: ToolTLSOptions

    /// The token to send, or `nil`.
    var resolvedAdminToken: String? {
        if let adminToken { return adminToken }
        if let token = ProcessInfo.processInfo.environment["AEGIS_ADMIN_TOKEN"], !token.isEmpty { return token }
        guard let text = try? String(contentsOfFile: DevDefaults.adminTokenPath(), encoding: .utf8) else { return nil }
        return text.split(whereSeparator: \.isNewline).first.map(String.init)
    }

    /// See `ToolTLSOptions.clientContext()`.
    func clientContext() throws -> NIOSSLContext? { try tls.clientContext() }
}

/// Whether the tools connect with TLS, and which CA they trust.
struct ToolTLSOptions: ParsableArguments {
    @Option(name: .customLong("tls-ca"),
            help: ArgumentHelp("The CA certificate to trust; connects with TLS (default: $AEGIS_TLS_CA, else the CA of `aegis dev` in \(DevDefaults.caPath()) unless it runs with --no-tls).",
                               valueName: "path"))
    var tlsCA: String?

    @Flag(name: .customLong("no-tls"), help: "Connect in plaintext.") var noTLS = false

    /// The CA file to trust, or `nil` for plaintext.
    var resolvedCA: String? {
        if noTLS { return nil }
        if let tlsCA { return tlsCA }
        if let path = ProcessInfo.processInfo.environment["AEGIS_TLS_CA"], !path.isEmpty { return path }
        let devCA = DevDefaults.caPath()
        let fm = FileManager.default
        guard fm.fileExists(atPath: devCA), !fm.fileExists(atPath: DevDefaults.plaintextMarkerPath()) else { return nil }
        return devCA
    }

    /// A TLS client context trusting `resolvedCA` (the server's certificate must name
    /// the address connected to), or `nil` for plaintext.
    func clientContext() throws -> NIOSSLContext? {
        guard let ca = resolvedCA else { return nil }
        return try Self.clientContext(trusting: ca)
    }

    /// A TLS client context trusting the CA certificate in the PEM file `ca`.
    static func clientContext(trusting ca: String) throws -> NIOSSLContext {
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            configuration.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ToolError("cannot use the CA certificate \(ca): \(error)")
        }
    }
}
