import AegisServer
import AegisTLS
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads the node's certificate files on SIGHUP. New connections on every port
/// (peers, RESP, admin) use the new certificates; a file that does not load is logged
/// and the previous certificates stay in use.
struct CertificateReloader: Service {
    let store: CertificateStore
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let material = try store.reload()
                logger.notice("TLS certificates reloaded (SIGHUP)", metadata: [
                    "files": "\(store.files)", "expires": "\(material.expiresAt)"])
            } catch {
                logger.error("TLS certificates NOT reloaded (SIGHUP); the previous ones stay in use: \(error.message)")
            }
        }
    }

    /// The certificates a store serves with and when they expire, for the admin
    /// server's `aegis_tls_certificate_expiry_seconds` and health check.
    static func served(_ store: CertificateStore) -> [ServedCertificate] {
        let material = store.material
        var served = [ServedCertificate(name: "node", notValidAfter: material.certificate.notValidAfter)]
        if let ca = material.trustRoots.map(\.notValidAfter).min() {
            served.append(ServedCertificate(name: "ca", notValidAfter: ca))
        }
        return served
    }
}
