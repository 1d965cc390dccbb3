import AegisKV
import AegisReplication
import AegisServer
import Foundation
import Hummingbird
import NIOCore

/// The conflict-resolution admin endpoints (registered by `AAAdminExtension`):
///
/// | Endpoint | Token | |
/// |---|---|---|
/// | `GET /v1/aa/strategies` | yes | the strategy table and bounds |
/// | `PUT /v1/aa/strategies` | yes | replaces them (JSON as GET returns), through the log (command 72) |
/// | `GET /v1/aa/conflicts` | yes | the open manual conflicts |
/// | `POST /v1/aa/conflicts/{id}/resolve` | yes | `{"value": "…"}` or `{"pick": N}`: a replicated write (command 73) |
/// | `GET /v1/aa/audit?key=K&limit=N` | yes | audit entries, newest first (limit 1...10000, default 100) |
///
/// Values are shown as UTF-8 text (`value`) when they are, else in base64 (`valueBase64`).
enum AAConflictsAdmin {
    struct Failure: Encodable { var error: String }

    /// The settings as the API and `--aa-strategy` write them.
    struct Strategies: Codable, Sendable {
        var rules: [String]
        var maxSiblings: Int?
        var maxConflicts: Int?
        var auditMaxEntries: Int?
        var auditMaxAgeMillis: UInt64?

        init(_ settings: ActiveActiveConflictSettings) {
            rules = settings.rules.map(\.description)
            maxSiblings = settings.maxSiblings
            maxConflicts = settings.maxConflicts
            auditMaxEntries = settings.auditMaxEntries
            auditMaxAgeMillis = settings.auditMaxAgeMillis
        }

        /// The settings (defaults for the bounds left out); throws on a bad rule.
        func settings() throws -> ActiveActiveConflictSettings {
            let defaults = ActiveActiveConflictSettings()
            return ActiveActiveConflictSettings(
                rules: try rules.map { try ActiveActiveStrategyRule(parsing: $0) },
                maxSiblings: maxSiblings ?? defaults.maxSiblings, maxConflicts: maxConflicts ?? defaults.maxConflicts,
                auditMaxEntries: auditMaxEntries ?? defaults.auditMaxEntries,
                auditMaxAgeMillis: auditMaxAgeMillis ?? defaults.auditMaxAgeMillis)
        }
    }

    struct Version: Codable, Sendable {
        var origin: String
        var physical: UInt64
        var logical: UInt32
        var deleted: Bool
        var value: String?
        var valueBase64: String?

        init(_ version: ActiveActiveVersion) {
            origin = version.origin.rawValue
            physical = version.stamp.physical
            logical = version.stamp.logical
            deleted = version.value == nil
            (value, valueBase64) = Self.text(version.value)
        }

        static func text(_ bytes: [UInt8]?) -> (String?, String?) {
            guard let bytes else { return (nil, nil) }
            if let text = String(validating: bytes, as: UTF8.self) { return (text, nil) }
            return (nil, Data(bytes).base64EncodedString())
        }

        var display: String { deleted ? "(deleted)" : value.map { "\"\($0)\"" } ?? "base64:\(valueBase64 ?? "")" }
    }

    struct Conflict: Codable, Sendable {
        var id: UInt64
        var key: String
        var detectedAtMillis: UInt64
        var versions: [Version]
    }

    struct AuditEntry: Codable, Sendable {
        var id: UInt64
        var timeMillis: UInt64
        var key: String
        var rule: String
        var detail: String
        var winnerDeleted: Bool
        var winner: String?
        var winnerBase64: String?
        var versions: [Version]
    }

    struct Resolve: Codable, Sendable {
        var value: String?
        var pick: Int?
    }

    struct Resolved: Codable, Sendable {
        var resolved: UInt64
        var key: String
        var index: UInt64
    }

    static func conflicts(_ report: ActiveActiveConflictReport) -> [Conflict] {
        report.conflicts.map { Conflict(id: $0.id, key: $0.key.description, detectedAtMillis: $0.detectedAt,
                                        versions: $0.versions.map(Version.init)) }
    }

    static func audit(_ report: ActiveActiveConflictReport) -> [AuditEntry] {
        report.audit.map { entry in
            let (winner, base64) = Version.text(entry.winner)
            return AuditEntry(id: entry.id, timeMillis: entry.time, key: entry.key.description, rule: entry.rule,
                              detail: entry.detail, winnerDeleted: entry.winner == nil, winner: winner, winnerBase64: base64,
                              versions: entry.versions.map(Version.init))
        }
    }

    /// The largest request body read (a PUT of 256 rules fits).
    static let maxBodyBytes = 1 << 20
    /// The most audit entries one request returns.
    static let maxAuditLimit = 10_000

    static func register(on router: Router<BasicRequestContext>, coordinator: AACoordinator,
                         authorize: @escaping @Sendable (Request) -> Response?) {
        router.get("/v1/aa/strategies") { request, _ in
            if let denied = authorize(request) { return denied }
            return await read(coordinator, key: nil, limit: 0) { AdminResponses.json(Strategies($0.settings)) }
        }
        router.put("/v1/aa/strategies") { request, _ in
            if let denied = authorize(request) { return denied }
            let settings: ActiveActiveConflictSettings
            do {
                let body = try await request.body.collect(upTo: maxBodyBytes)
                settings = try JSONDecoder().decode(Strategies.self, from: Data(buffer: body)).settings()
            } catch {
                return AdminResponses.json(Failure(error: "the body must be {\"rules\": [\"PREFIX=STRATEGY[:ARGS]\", …], "
                                                   + "\"maxSiblings\"…}: \(error)"), status: .badRequest)
            }
            return await execute(coordinator, .activeActiveConflict(.setStrategies(settings))) { _ in
                AdminResponses.json(Strategies(settings))
            }
        }
        router.get("/v1/aa/conflicts") { request, _ in
            if let denied = authorize(request) { return denied }
            return await read(coordinator, key: nil, limit: 0) { AdminResponses.json(conflicts($0)) }
        }
        router.post("/v1/aa/conflicts/:id/resolve") { request, context in
            if let denied = authorize(request) { return denied }
            guard let id = context.parameters.get("id").flatMap({ UInt64($0) }) else {
                return AdminResponses.json(Failure(error: "the conflict ID must be a number"), status: .badRequest)
            }
            let choice: ActiveActiveResolution
            do {
                let body = try await request.body.collect(upTo: maxBodyBytes)
                let resolve = try JSONDecoder().decode(Resolve.self, from: Data(buffer: body))
                switch (resolve.value, resolve.pick) {
                case (let value?, nil): choice = .value(Array(value.utf8))
                case (nil, let pick?): choice = .pick(pick)
                default: throw AAAdminError("give exactly one of value and pick")
                }
            } catch {
                return AdminResponses.json(Failure(error: "the body must be {\"value\": \"…\"} or {\"pick\": N}: \(error)"),
                                           status: .badRequest)
            }
            return await resolve(coordinator, id: id, choice: choice)
        }
        router.get("/v1/aa/audit") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            let limit = query["limit"].flatMap { Int(String($0)) } ?? 100
            guard (1 ... maxAuditLimit).contains(limit) else {
                return AdminResponses.json(Failure(error: "limit is 1...\(maxAuditLimit)"), status: .badRequest)
            }
            let key = query["key"].map { Key(String($0).removingPercentEncoding ?? String($0)) }
            return await read(coordinator, key: key, limit: limit) { AdminResponses.json(audit($0)) }
        }
    }

    /// Resolves conflict `id` (its key read first) through the log.
    static func resolve(_ coordinator: AACoordinator, id: UInt64, choice: ActiveActiveResolution) async -> Response {
        guard let runtime = coordinator.runtime else {
            return AdminResponses.json(Failure(error: "the node is starting"), status: .serviceUnavailable)
        }
        do {
            let report = try await runtime.activeActiveConflictReport(key: nil, limit: 0)
            guard let conflict = report.conflicts.first(where: { $0.id == id }) else {
                return AdminResponses.json(Failure(error: "conflict \(id) is not open"), status: .notFound)
            }
            return await execute(coordinator, .activeActiveConflict(.resolve(key: conflict.key, id: id, choice: choice))) {
                AdminResponses.json(Resolved(resolved: id, key: conflict.key.description, index: $0.index))
            }
        } catch {
            return AdminResponses.json(Failure(error: "\(error)"), status: .serviceUnavailable)
        }
    }

    private static func read(_ coordinator: AACoordinator, key: Key?, limit: Int,
                             _ answer: (ActiveActiveConflictReport) -> Response) async -> Response {
        guard let runtime = coordinator.runtime else {
            return AdminResponses.json(Failure(error: "the node is starting"), status: .serviceUnavailable)
        }
        do {
            return answer(try await runtime.activeActiveConflictReport(key: key, limit: limit))
        } catch {
            return AdminResponses.json(Failure(error: "\(error)"), status: .serviceUnavailable)
        }
    }

    private static func execute(_ coordinator: AACoordinator, _ command: Command,
                                _ answer: (CommandResult) -> Response) async -> Response {
        guard let runtime = coordinator.runtime else {
            return AdminResponses.json(Failure(error: "the node is starting"), status: .serviceUnavailable)
        }
        do {
            let result = try await runtime.execute(command)
            if let error = result.error { return AdminResponses.json(Failure(error: "\(error)"), status: .badRequest) }
            return answer(result)
        } catch {
            return AdminResponses.json(Failure(error: "\(error)"), status: .serviceUnavailable)
        }
    }
}

/// A request the admin API refuses, with its reason.
struct AAAdminError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
