import AegisOperations
import AegisServer
import ArgumentParser
import Foundation
import Hummingbird
import NIOCore

/// The drill settings of `aegis serve` (flags, then AEGIS_<NAME>, then --config).
struct ServeDrillOptions: ParsableArguments {
    @Option(help: "The dr-drill health check warns when the last successful DR drill is older than this (default 7d).")
    var drDrillMaxAge: String?
    @Option(help: "DR drills kept in the node's drill history (<data-dir>/dr-drills.jsonl; default 100, at most 1000).")
    var drDrillRetention: Int?
    @Flag(help: "This node is a throw-away copy started by `aegis dr drill`: its DR side never contacts another cluster.")
    var drDrillCopy = false

    /// The extension serving the history, with the settings resolved.
    func makeExtension(config: String?, dataDirectory: String, coordinator: DRCoordinator) throws -> DrillAdminExtension {
        let value = try ServeSettings.lookup(config: config)
        let ageText = value("dr-drill-max-age", drDrillMaxAge) ?? "7d"
        guard let maxAge = BackupServiceConfiguration.parseDuration(ageText) else {
            throw ValidationError("--dr-drill-max-age: '\(ageText)' is not a duration like 7d, 12h or 30m")
        }
        let retentionText = value("dr-drill-retention", drDrillRetention.map(String.init)) ?? "100"
        guard let retention = Int(retentionText), (1 ... DrillHistory.maxRetention).contains(retention) else {
            throw ValidationError("--dr-drill-retention must be 1 to \(DrillHistory.maxRetention)")
        }
        return DrillAdminExtension(
            history: DrillHistory(path: dataDirectory + "/" + DrillHistory.fileName, retention: retention),
            maxAge: maxAge, coordinator: coordinator)
    }
}

/// The drill history of a node and the `dr-drill` check.
///
/// | Endpoint | Token | |
/// |---|---|---|
/// | `GET /v1/dr/drills` | yes | the node's drill history (JSON array, oldest first) |
/// | `POST /v1/dr/drills` | yes | appends one drill record (`aegis dr drill` posts to every node it was given) |
struct DrillAdminExtension: AdminExtension {
    let history: DrillHistory
    let maxAge: Duration
    let coordinator: DRCoordinator
    /// One append at a time (read, append, rewrite), and the records kept in memory
    /// after the first read, so that a health probe does not read the file.
    private let cache = HistoryCache()

    final class HistoryCache: @unchecked Sendable {
        let lock = NSLock()
        var records: [DrillRecord]?

        /// The records (read from the file the first time).
        func read(_ history: DrillHistory) throws -> [DrillRecord] {
            try lock.withLock {
                if let records { return records }
                let read = try history.read().records
                records = read
                return read
            }
        }

        /// Appends to the file, then to the records in memory.
        func append(_ record: DrillRecord, to history: DrillHistory) throws -> Int {
            try lock.withLock {
                try history.append(record)
                let read = try history.read().records
                records = read
                return read.count
            }
        }
    }

    init(history: DrillHistory, maxAge: Duration, coordinator: DRCoordinator) {
        self.history = history
        self.maxAge = maxAge
        self.coordinator = coordinator
    }

    struct Failure: Encodable { var error: String }
    struct Recorded: Encodable {
        var recorded: Bool
        var kept: Int
    }

    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?) {
        let history = self.history, cache = self.cache
        router.get("/v1/dr/drills") { request, _ in
            if let denied = authorize(request) { return denied }
            do {
                return AdminResponses.json(try cache.read(history))
            } catch {
                return AdminResponses.json(Failure(error: "\(error)"), status: .internalServerError)
            }
        }
        router.post("/v1/dr/drills") { request, context in
            if let denied = authorize(request) { return denied }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: DrillRecord.maxEncodedBytes)
            } catch {
                return AdminResponses.json(Failure(error: "a drill record is at most \(DrillRecord.maxEncodedBytes) bytes"),
                                           status: .contentTooLarge)
            }
            let record: DrillRecord
            do {
                record = try DrillRecord.decode(Data(buffer: body))
            } catch {
                return AdminResponses.json(Failure(error: "\(error)"), status: .badRequest)
            }
            do {
                let kept = try cache.append(record, to: history)
                return AdminResponses.json(Recorded(recorded: true, kept: kept))
            } catch {
                return AdminResponses.json(Failure(error: "\(error)"), status: .internalServerError)
            }
        }
    }

    /// `dr-drill` (dependency): fails when the last drill failed, warns when the last
    /// successful one is older than `--dr-drill-max-age`.
    func healthChecks() -> [HealthCheck] {
        [HealthCheck(name: "dr-drill", scope: .dependency, componentType: "component") { [self] in drillHealth() }]
    }

    func drillHealth() -> HealthCheckResult {
        let records: [DrillRecord]
        do {
            records = try cache.read(history)
        } catch {
            return .warn("cannot read the drill history: \(error)")
        }
        let inDRPair = coordinator.runtime.map { !$0.status.dr.isInitial } ?? false
        return DrillHistory.health(records, maxAge: maxAge, now: DRCoordinator.wallMillis(), inDRPair: inDRPair)
    }
}
