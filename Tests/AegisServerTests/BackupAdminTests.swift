import AegisBackup
import AegisServer
import Foundation
import Hummingbird
import Logging
import Prometheus
import Testing

@Suite struct BackupAdminTests {
    let backend = FakeBackend()
    let auth: HTTPFields = [.authorization: "Bearer t"]

    func service(root: String, maxAge: Duration? = .seconds(3600)) -> BackupService {
        BackupService(configuration: BackupServiceConfiguration(target: LocalDirectoryTarget(root: root),
                                                                maxBackupAge: maxAge),
                      dataDirectory: root + "/no-such-node", logger: Logger(label: "test"))
    }

    func app(_ service: BackupService) -> some ApplicationProtocol {
        AdminServer(configuration: AdminServerConfiguration(port: 0, adminToken: "t"), backend: backend,
                    registry: PrometheusCollectorRegistry(), logger: Logger(label: "test"),
                    extensions: [BackupAdminExtension(service: service)]).makeApplication()
    }

    @Test func test_healthz_warnsWithoutASuccessfulBackup_andTheEndpointsNeedTheToken() async throws {
        let root = NSTemporaryDirectory() + "aegis-backup-admin-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let service = service(root: root)
        try await app(service).test(.router) { client in
            let health = try await client.execute(uri: "/healthz?verbose", method: .get, headers: auth)
            #expect(health.status == .ok)  // a warning does not fail the check
            #expect(String(buffer: health.body).contains("[!]backup warn: no successful backup in \(root)"))
            #expect(try await client.execute(uri: "/v1/backups", method: .get).status == .unauthorized)
            let listing = try await client.execute(uri: "/v1/backups", method: .get, headers: auth)
            #expect(listing.status == .ok)
            #expect(String(buffer: listing.body).contains("\"backups\" : ["))
            // Taking a backup of a missing data directory fails with the reason.
            let taken = try await client.execute(uri: "/v1/backups?kind=full", method: .post, headers: auth)
            #expect(taken.status == .internalServerError)
            #expect(String(buffer: taken.body).contains("no identity file"))
            let bad = try await client.execute(uri: "/v1/backups?kind=weekly", method: .post, headers: auth)
            #expect(bad.status == .badRequest)
        }
    }

    @Test func test_healthCheck_warnsOnlyWhenTheLastBackupIsTooOld() {
        let service = service(root: NSTemporaryDirectory() + "unused", maxAge: .seconds(60))
        #expect(service.healthCheck().status == .warn)  // none yet
        let noLimit = self.service(root: NSTemporaryDirectory() + "unused", maxAge: nil)
        #expect(noLimit.healthCheck().status == .pass)
    }

    @Test func test_schedule_parses_andRefusesNonsense() throws {
        let schedule = try BackupServiceConfiguration.parseSchedule("full=24h,diff=6h,incremental=30m")
        #expect(schedule[.full] == .seconds(86_400))
        #expect(schedule[.differential] == .seconds(21_600))
        #expect(schedule[.incremental] == .seconds(1800))
        #expect(throws: BackupError.self) { _ = try BackupServiceConfiguration.parseSchedule("full=often") }
        #expect(throws: BackupError.self) { _ = try BackupServiceConfiguration.parseSchedule("archive=1h") }
        #expect(BackupServiceConfiguration.parseDuration("1s") == .seconds(1))
        #expect(BackupServiceConfiguration.parseDuration("500ms") == .milliseconds(500))
    }
}
