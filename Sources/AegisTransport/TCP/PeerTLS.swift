public import AegisRaft
public import AegisTLS
internal import NIOCore
internal import NIOSSL

extension TCPTransport {
    /// Mutual TLS between peers.
    ///
    /// Both directions use the node's certificate from `certificates`: the listening
    /// side requires a client certificate signed by the cluster CA, and accepts the
    /// Aegis handshake only when the certificate names (as a DNS subject alternative
    /// name) the node ID the handshake claims in `from`. The connecting side checks
    /// that the listener's certificate names the node ID it dialled before it sends its
    /// handshake. ``CertificateStore/reload()`` (on SIGHUP) applies to connections
    /// opened afterwards.
    public struct TLSSettings: Sendable {
        /// The node's CA, certificate and key, reloadable.
        public var certificates: CertificateStore

        /// Uses a store the caller owns (and reloads).
        public init(certificates: CertificateStore) {
            self.certificates = certificates
        }

        /// Loads `files` into a new store that requires the certificate to name `nodeID`.
        ///
        /// - Throws: `TransportError(.invalidConfiguration)` with the ``TLSError`` message.
        public init(files: TLSFiles, nodeID: NodeID) throws(TransportError) {
            do {
                certificates = try CertificateStore(files: files, requiredIdentity: nodeID.rawValue)
            } catch {
                throw TransportError(.invalidConfiguration, "peer TLS: \(error.message)")
            }
        }
    }
}

/// TLS helpers shared by the inbound and outbound handlers.
enum PeerTLS {
    /// The DNS names of the certificate the peer presented on `context`'s channel;
    /// `nil` when the channel runs no TLS or the peer presented none.
    static func peerNames(_ context: ChannelHandlerContext) -> [String]? {
        guard let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate() else { return nil }
        return PeerIdentity.names(in: certificate)
    }

    /// Whether `error` comes from TLS (a failed handshake, a peer that speaks no TLS).
    static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLCloseTimedOutError
    }

    /// Adds the server-side TLS handler in front of `pipeline`.
    static func addServerHandler(to channel: any Channel, store: CertificateStore) throws {
        let context = try store.serverContext(clientAuthentication: .required)
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
    }

    /// Adds the client-side TLS handler. No server name is sent: peers are checked by
    /// node ID after the handshake, not by host name.
    static func addClientHandler(to channel: any Channel, store: CertificateStore) throws {
        let context = try store.clientContext(verifyHostname: false)
        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
    }
}
