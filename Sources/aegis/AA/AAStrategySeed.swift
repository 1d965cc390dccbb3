import AegisKV
import AegisReplication
import ArgumentParser
import Foundation

/// `aegis serve --aa-strategy PREFIX=STRATEGY[:ARGS]` (repeatable): the strategy table
/// this node asks for. The leader records it through the log (command 72) once per
/// process start when the cluster's table differs; after that the admin API
/// (`PUT /v1/aa/strategies`) may change it until the next start.
final class AAStrategySeed: @unchecked Sendable {
    let wanted: ActiveActiveConflictSettings
    private let lock = NSLock()
    private var done = false

    init(_ wanted: ActiveActiveConflictSettings) { self.wanted = wanted }

    /// The settings of `--aa-strategy` values (`nil` when there are none); refuses bad ones.
    static func settings(parsing texts: [String]) throws -> ActiveActiveConflictSettings? {
        guard !texts.isEmpty else { return nil }
        do {
            let settings = ActiveActiveConflictSettings(rules: try texts.map { try ActiveActiveStrategyRule(parsing: $0) })
            if let problem = settings.problem(knownFunctions: [], maxKeySize: StateMachine.Limits().maxKeySize) {
                throw problem
            }
            return settings
        } catch {
            throw ValidationError("--aa-strategy: \(error)")
        }
    }

    /// One turn of the coordinator's loop: on the leader of an enabled cluster, records
    /// the table if it differs.
    func step(_ coordinator: AACoordinator) async -> Duration {
        guard !lock.withLock({ done }) else { return .seconds(3600) }
        guard let runtime = coordinator.runtime, runtime.status.role == .leader, runtime.status.activeActive.enabled else {
            return .milliseconds(200)
        }
        do {
            let report = try await runtime.activeActiveConflictReport(key: nil, limit: 0, stale: true)
            if report.settings != wanted {
                let result = try await runtime.execute(.activeActiveConflict(.setStrategies(wanted)))
                if let error = result.error {
                    coordinator.logger.warning("cannot record the --aa-strategy table: \(error)")
                    return .seconds(5)
                }
                coordinator.logger.notice("active-active strategies recorded",
                                          metadata: ["rules": "\(wanted.rules.map(\.description))"])
            }
            lock.withLock { done = true }
        } catch {
            coordinator.logger.debug("aa: recording strategies: \(error)")
        }
        return .milliseconds(200)
    }
}
