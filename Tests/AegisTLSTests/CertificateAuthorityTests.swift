import AegisTLS
import Foundation
import Testing
import X509

@Suite struct CertificateAuthorityTests {
    @Test func test_issue_nodeCertificateNamesNodeIDThenHosts() throws {
        let ca = try CertificateAuthority.create(commonName: "unit CA")
        let issued = try ca.issue(nodeID: "node1", hosts: ["127.0.0.1", "::1", "node1.internal", "127.0.0.1"])
        #expect(issued.summary.alternativeNames == ["DNS:node1", "IP:127.0.0.1", "IP:0:0:0:0:0:0:0:1", "DNS:node1.internal"])
        #expect(PeerIdentity.names(in: issued.certificate) == ["node1", "node1.internal"])
        #expect(issued.certificate.issuer == ca.certificate.subject)
        #expect(ca.certificate.publicKey.isValidSignature(issued.certificate.signature, for: issued.certificate))
        #expect(!issued.summary.isCertificateAuthority)
        #expect(ca.summary.isCertificateAuthority)
    }

    @Test func test_issue_refusesNamesThatAreNotDNSNamesOrFileNames() throws {
        let ca = try CertificateAuthority.create()
        for bad in ["", "../etc/passwd", "node 1", "-node", ".hidden", "nöde", String(repeating: "a", count: 254)] {
            #expect(throws: TLSError.self, "node ID '\(bad)'") { try ca.issue(nodeID: bad) }
        }
        #expect(throws: TLSError.self) { try ca.issue(nodeID: "node1", hosts: ["bad host"]) }
        #expect(throws: TLSError.self) { try ca.issue(nodeID: "node1", validity: .seconds(60)) }
    }

    @Test func test_write_keysAreOwnerOnlyAndFilesAreNotOverwritten() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = try CertificateAuthority.create()
        let caPaths = try ca.write(to: directory.file("ca"))
        let files = try ca.issue(nodeID: "node1").write(to: directory.file("node1"))
        #expect(try permissions(files.keyPath) == 0o600)
        #expect(try permissions(caPaths[1]) == 0o600)
        #expect(try permissions(files.certificatePath) == 0o644)
        #expect(throws: TLSError.self) { try ca.issue(nodeID: "node1").write(to: directory.file("node1")) }
        #expect(throws: TLSError.self) { try ca.write(to: directory.file("ca")) }
        try ca.issue(nodeID: "node1").write(to: directory.file("node1"), overwrite: true)
        // A second node in the same directory shares ca.pem.
        try ca.issue(nodeID: "node2").write(to: directory.file("node1"))
    }

    @Test func test_load_roundTripsTheCAAndItsCertificatesVerify() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let original = try CertificateAuthority.create()
        try original.write(to: directory.path)
        let loaded = try CertificateAuthority.load(from: directory.path)
        #expect(loaded.certificate == original.certificate)
        let files = try loaded.issue(nodeID: "node7", hosts: ["10.0.0.7"]).write(to: directory.file("node7"))
        let material = try TLSMaterial.load(files)
        #expect(material.identities == ["node7"])
        #expect(material.trustRoots == [original.certificate])
    }

    @Test func test_load_refusesAKeyOfAnotherCertificate() throws {
        let pki = try TestPKI(nodes: ["node1", "node2"])
        defer { pki.directory.remove() }
        var files = pki.files("node1")
        files.keyPath = pki.files("node2").keyPath
        #expect(try code(TLSMaterial.load(files)) == .keyMismatch)
    }

    @Test func test_load_refusesACertificateOfAnotherCA() throws {
        let pki = try TestPKI(nodes: ["node1"])
        let other = try TestPKI(nodes: ["node1"], commonName: "other CA")
        defer { pki.directory.remove(); other.directory.remove() }
        var files = pki.files("node1")
        files.certificatePath = other.files("node1").certificatePath
        files.keyPath = other.files("node1").keyPath
        #expect(try code(TLSMaterial.load(files)) == .untrustedCertificate)
    }

    @Test func test_load_refusesExpiredAndNotYetValidCertificates() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let longAgo = Date().addingTimeInterval(-400 * 86_400)
        let ca = try CertificateAuthority.create(now: longAgo)
        let files = try ca.issue(nodeID: "old", validity: .seconds(30 * 86_400), now: longAgo).write(to: directory.path)
        #expect(try code(TLSMaterial.load(files)) == .expired)
        #expect(try code(TLSMaterial.load(files, now: longAgo.addingTimeInterval(-86_400))) == .notYetValid)
        #expect(throws: Never.self) { try TLSMaterial.load(files, now: longAgo.addingTimeInterval(86_400)) }
    }

    @Test func test_load_refusesFilesThatAreNotPEM() throws {
        let pki = try TestPKI(nodes: ["node1"])
        defer { pki.directory.remove() }
        let garbage = pki.directory.file("garbage.pem")
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: garbage))
        var files = pki.files("node1")
        files.certificatePath = garbage
        #expect(try code(TLSMaterial.load(files)) == .invalidCertificate)
        files = pki.files("node1")
        files.keyPath = garbage
        #expect(try code(TLSMaterial.load(files)) == .invalidPrivateKey)
        files.keyPath = pki.directory.file("missing.pem")
        #expect(try code(TLSMaterial.load(files)) == .unreadableFile)
    }

    @Test func test_expiry_isTheEarliestNotAfterAndWarnsAhead() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let now = Date()
        let ca = try CertificateAuthority.create(validity: .seconds(100 * 86_400), now: now)
        let files = try ca.issue(nodeID: "node1", validity: .seconds(10 * 86_400), now: now).write(to: directory.path)
        let store = try CertificateStore(files: files, requiredIdentity: "node1", clock: { now })
        #expect(abs(store.expiresAt.timeIntervalSince(now.addingTimeInterval(10 * 86_400))) < 2)
        #expect(abs(store.daysUntilExpiry() - 10) < 0.001)
        #expect(store.expiryStatus(warningWindow: .seconds(5 * 86_400)).warning == nil)
        guard case .expiringSoon(let left) = store.expiryStatus() else {
            Issue.record("expected a warning within the default 30 days, got \(store.expiryStatus())")
            return
        }
        #expect(abs(left - 10) < 0.001)
        #expect(store.expiryStatus().warning?.contains("expires in 10.0 days") == true)
        guard case .expired = store.expiryStatus(now: now.addingTimeInterval(11 * 86_400)) else {
            Issue.record("expected expired after 11 days")
            return
        }
        // Issued certificates never outlive their CA.
        let clipped = try ca.issue(nodeID: "node2", validity: .seconds(365 * 86_400), now: now)
        #expect(clipped.expiresAt == ca.certificate.notValidAfter)
    }

    private func permissions(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

/// The code of the `TLSError` that `body` throws, or `nil` when it does not throw.
func code<T>(_ body: @autoclosure () throws -> T) throws -> TLSError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as TLSError {
        return error.code
    }
}
