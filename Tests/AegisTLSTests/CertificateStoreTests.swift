import AegisTLS
import Foundation
import NIOSSL
import Testing
import X509

@Suite struct CertificateStoreTests {
    @Test func test_reload_picksUpNewFilesAndKeepsTheOldOnesOnError() throws {
        let pki = try TestPKI(nodes: ["node1", "node2"])
        defer { pki.directory.remove() }
        let store = try pki.store("node1")
        let first = store.material.certificate
        #expect(store.generation == 0)

        // A new certificate for the same node: picked up.
        try pki.ca.issue(nodeID: "node1", hosts: ["10.0.0.1"]).write(to: pki.directory.file("node1"), overwrite: true)
        try store.reload()
        let second = store.material.certificate
        #expect(second != first)
        #expect(store.generation == 1)
        #expect(CertificateSummary(second).alternativeNames == ["DNS:node1", "IP:10.0.0.1"])

        // A truncated certificate file: refused, the second certificate stays.
        let certificatePath = pki.files("node1").certificatePath
        let text = try String(contentsOfFile: certificatePath, encoding: .utf8)
        try Data(text.prefix(text.count / 2).utf8).write(to: URL(fileURLWithPath: certificatePath))
        #expect(try code(store.reload()) == .invalidCertificate)
        #expect(store.material.certificate == second)
        #expect(store.generation == 1)

        // A valid certificate of another node: refused (identity), the second stays.
        try Data(contentsOf: URL(fileURLWithPath: pki.files("node2").certificatePath))
            .write(to: URL(fileURLWithPath: certificatePath))
        try Data(contentsOf: URL(fileURLWithPath: pki.files("node2").keyPath)).write(to: URL(fileURLWithPath: pki.files("node1").keyPath))
        #expect(try code(store.reload()) == .identityMismatch)
        #expect(store.material.certificate == second)

        // The new key arrived before the new certificate: mismatch, refused.
        try pki.ca.issue(nodeID: "node1").write(to: pki.directory.file("node1"), overwrite: true)
        let otherKey = try pki.ca.issue(nodeID: "node1").privateKeyPEM()
        try Data(otherKey.utf8).write(to: URL(fileURLWithPath: pki.files("node1").keyPath))
        #expect(try code(store.reload()) == .keyMismatch)
        #expect(store.material.certificate == second)
    }

    @Test func test_contexts_followTheReload() throws {
        let pki = try TestPKI(nodes: ["node1"])
        defer { pki.directory.remove() }
        let store = try pki.store("node1")
        let before = try store.serverContext(clientAuthentication: .required)
        #expect(try store.serverContext(clientAuthentication: .required) === before)
        let optional = try store.serverContext(clientAuthentication: .optional)
        #expect(optional !== before)
        try store.reload()
        #expect(try store.serverContext(clientAuthentication: .required) !== before)
        #expect(try store.clientContext(verifyHostname: true) === store.clientContext(verifyHostname: true))
    }

    @Test func test_init_refusesACertificateForAnotherIdentity() throws {
        let pki = try TestPKI(nodes: ["node1"])
        defer { pki.directory.remove() }
        #expect(try code(CertificateStore(files: pki.files("node1"), requiredIdentity: "node2")) == .identityMismatch)
        #expect(throws: Never.self) { try CertificateStore(files: pki.files("node1")) }
    }
}
