public import Foundation
internal import NIOConcurrencyHelpers
internal import NIOCore
public import NIOSSL

/// The TLS material of one identity, re-read from its files on ``reload()``: new
/// connections use the newest certificates, connections already open keep theirs.
///
/// Thread-safe. ``reload()`` checks the new files completely (see
/// ``TLSMaterial/load(_:now:)``, and that NIOSSL accepts them) before it swaps; on any
/// error it throws and the store keeps serving the previous material. The executable
/// calls it on SIGHUP.
///
/// Servers and clients that create a handler per connection take a context from
/// ``serverContext(clientAuthentication:)`` or ``clientContext(verifyHostname:)`` each
/// time (contexts are built once per reload and cached). Code that needs one fixed
/// `TLSConfiguration` (an HTTP server built once) takes
/// ``makeServerConfiguration(clientAuthentication:)``, which picks up new certificates
/// and keys (not new CA certificates) at each handshake.
public final class CertificateStore: Sendable {
    private struct State {
        var material: TLSMaterial
        var serverContexts: [ClientAuthentication: NIOSSLContext] = [:]
        var clientContexts: [Bool: NIOSSLContext] = [:]
        var generation: UInt64 = 0
    }

    /// The files read at each reload.
    public let files: TLSFiles
    /// A name the certificate must carry (a node's ID), or `nil`.
    public let requiredIdentity: String?
    private let clock: @Sendable () -> Date
    private let state: NIOLockedValueBox<State>

    /// Loads `files`.
    ///
    /// - Parameters:
    ///   - requiredIdentity: a DNS name the certificate must list (a node passes its
    ///     node ID, so a certificate for another node is refused at start and at reload).
    ///   - clock: the time certificates must be valid at (tests pass a fixed one).
    /// - Throws: `TLSError` as ``TLSMaterial/load(_:now:)``, `.identityMismatch`, or
    ///   `.configurationFailed` when NIOSSL refuses the files.
    public init(files: TLSFiles, requiredIdentity: String? = nil,
                clock: @escaping @Sendable () -> Date = { Date() }) throws(TLSError) {
        self.files = files
        self.requiredIdentity = requiredIdentity
        self.clock = clock
        let (material, server, client) = try Self.loadChecked(files, requiredIdentity: requiredIdentity, now: clock())
        state = NIOLockedValueBox(State(material: material, serverContexts: [.required: server],
                                        clientContexts: [false: client]))
    }

    /// The material in use.
    public var material: TLSMaterial { state.withLockedValue { $0.material } }

    /// How many reloads succeeded.
    public var generation: UInt64 { state.withLockedValue { $0.generation } }

    /// Re-reads the files and, when they are valid, uses them for new connections.
    /// Returns the new material.
    ///
    /// - Throws: `TLSError` describing the first problem; the previous material stays
    ///   in use.
    @discardableResult
    public func reload() throws(TLSError) -> TLSMaterial {
        let (material, server, client) = try Self.loadChecked(files, requiredIdentity: requiredIdentity, now: clock())
        state.withLockedValue { state in
            state = State(material: material, serverContexts: [.required: server], clientContexts: [false: client],
                          generation: state.generation + 1)
        }
        return material
    }

    /// A context for a new server-side connection.
    ///
    /// - Throws: `TLSError(.configurationFailed)` if NIOSSL refuses the configuration
    ///   (not expected: the material was checked when loaded).
    public func serverContext(clientAuthentication: ClientAuthentication) throws(TLSError) -> NIOSSLContext {
        let (cached, material, generation) = state.withLockedValue {
            ($0.serverContexts[clientAuthentication], $0.material, $0.generation)
        }
        if let cached { return cached }
        let context = try Self.context(material.makeServerConfiguration(clientAuthentication: clientAuthentication), material)
        state.withLockedValue { state in
            // Cached only if no reload happened meanwhile.
            if state.generation == generation { state.serverContexts[clientAuthentication] = context }
        }
        return context
    }

    /// A context for a new client-side connection (see
    /// ``TLSMaterial/makeClientConfiguration(verifyHostname:)``).
    public func clientContext(verifyHostname: Bool) throws(TLSError) -> NIOSSLContext {
        let (cached, material, generation) = state.withLockedValue {
            ($0.clientContexts[verifyHostname], $0.material, $0.generation)
        }
        if let cached { return cached }
        let context = try Self.context(material.makeClientConfiguration(verifyHostname: verifyHostname), material)
        state.withLockedValue { state in
            if state.generation == generation { state.clientContexts[verifyHostname] = context }
        }
        return context
    }

    /// A server configuration built from the current material that, at every handshake,
    /// presents the certificate and key current at that moment, so a server built once
    /// serves rotated certificates after ``reload()``. Trusted CA certificates are the
    /// ones current when this is called.
    public func makeServerConfiguration(clientAuthentication: ClientAuthentication = .none) -> TLSConfiguration {
        var configuration = material.makeServerConfiguration(clientAuthentication: clientAuthentication)
        configuration.sslContextCallback = { [self] _, promise in
            let current = material
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = current.sslCertificateChain.map { .certificate($0) }
            override.privateKey = .privateKey(current.sslPrivateKey)
            promise.succeed(override)
        }
        return configuration
    }

    /// When the first certificate that matters expires (see ``TLSMaterial/expiresAt``).
    public var expiresAt: Date { material.expiresAt }

    /// Days until ``expiresAt``, negative once expired.
    public func daysUntilExpiry(now: Date? = nil) -> Double {
        material.daysUntilExpiry(now: now ?? clock())
    }

    /// Whether the certificates are valid, expire within `warningWindow`, or have expired.
    public func expiryStatus(warningWindow: Duration = CertificateExpiry.defaultWarningWindow,
                             now: Date? = nil) -> CertificateExpiry {
        material.expiryStatus(warningWindow: warningWindow, now: now ?? clock())
    }

    /// Loads and checks `files`, and builds the two contexts the peer transport uses,
    /// which proves NIOSSL accepts them.
    private static func loadChecked(_ files: TLSFiles, requiredIdentity: String?,
                                    now: Date) throws(TLSError) -> (TLSMaterial, NIOSSLContext, NIOSSLContext) {
        let material = try TLSMaterial.load(files, now: now)
        if let requiredIdentity, !material.identities.contains(requiredIdentity) {
            throw TLSError(.identityMismatch,
                           "the certificate in \(files.certificatePath) names \(material.identities) but not '\(requiredIdentity)'; issue one for '\(requiredIdentity)'")
        }
        let server = try context(material.makeServerConfiguration(clientAuthentication: .required), material)
        let client = try context(material.makeClientConfiguration(verifyHostname: false), material)
        return (material, server, client)
    }

    private static func context(_ configuration: TLSConfiguration, _ material: TLSMaterial) throws(TLSError) -> NIOSSLContext {
        try TLSError.wrapping(.configurationFailed, "NIOSSL refused the TLS configuration from \(material.files)") {
            try NIOSSLContext(configuration: configuration)
        }
    }
}
