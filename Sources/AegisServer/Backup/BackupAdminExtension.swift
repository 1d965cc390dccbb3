public import AegisBackup
import Foundation
public import Hummingbird
import NIOCore

/// The backup admin endpoints (all need the admin token) and the `backup` health check.
///
/// | Endpoint | |
/// |---|---|
/// | `GET /v1/backups` | the service status and every backup's manifest |
/// | `POST /v1/backups?kind=full` | take a backup now (`full`, `incremental`, `differential`) |
/// | `POST /v1/backups/{id}/verify` | verify by restore (`?checksums-only` for the cheap check) |
/// | `GET /v1/backups/archive` | continuous archiving: cursor, lag, bytes |
public struct BackupAdminExtension: AdminExtension {
    public let service: BackupService

    public init(service: BackupService) { self.service = service }

    struct Listing: Encodable {
        var status: BackupServiceStatus
        var backups: [BackupManifest]
        var unreadable: [String]
    }

    struct VerifyAnswer: Encodable {
        var id: String
        var ok: Bool
        var chain: [String]
        var index: UInt64?
        var digest: String?
        var bytesChecked: UInt64
    }

    struct Failure: Encodable { var error: String }

    public func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?) {
        let service = self.service
        router.get("/v1/backups") { request, _ in
            if let denied = authorize(request) { return denied }
            do {
                let (backups, unreadable) = try await service.repository.listBackups()
                return Self.json(Listing(status: service.status, backups: backups, unreadable: unreadable.map { "\($0)" }))
            } catch { return Self.json(Failure(error: "\(error)"), status: .internalServerError) }
        }
        router.get("/v1/backups/archive") { request, _ in
            if let denied = authorize(request) { return denied }
            return Self.json(service.status)
        }
        router.post("/v1/backups") { request, _ in
            if let denied = authorize(request) { return denied }
            let text = request.uri.queryParameters["kind"].map(String.init) ?? "full"
            guard let kind = BackupKind(rawValue: text), kind != .archive else {
                return Self.json(Failure(error: "kind must be full, incremental or differential"), status: .badRequest)
            }
            do { return Self.json(try await service.takeBackup(kind), status: .created) } catch {
                return Self.json(Failure(error: "\(error)"), status: .internalServerError)
            }
        }
        router.post("/v1/backups/{id}/verify") { request, context in
            if let denied = authorize(request) { return denied }
            let id = context.parameters.get("id") ?? ""
            let checksumsOnly = request.uri.queryParameters["checksums-only"] != nil
            do {
                let report = try await service.repository.verify(id, checksumsOnly: checksumsOnly)
                return Self.json(VerifyAnswer(id: id, ok: true, chain: report.chain, index: report.position?.index,
                                              digest: report.digest, bytesChecked: report.bytesChecked))
            } catch { return Self.json(Failure(error: "\(error)"), status: .unprocessableContent) }
        }
    }

    public func healthChecks() -> [HealthCheck] {
        let service = self.service
        return [HealthCheck(name: "backup", scope: .dependency, componentType: "datastore") { service.healthCheck() }]
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        AdminResponses.json(value, status: status)
    }
}
