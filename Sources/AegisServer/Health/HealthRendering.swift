public import Foundation

/// The two ways a `HealthReport` is written.
extension HealthReport {
    /// Kubernetes style: `ok` when everything passed and no detail was asked for;
    /// otherwise one `[+]name ok` / `[!]name warn: detail` / `[-]name failed: detail`
    /// line per check and `<endpoint> check passed|failed`.
    public func text(verbose: Bool) -> String {
        guard verbose || !passed else { return "ok" }
        var body = entries.map { entry in
            switch entry.result.status {
            case .pass: return "[+]\(entry.name) ok\n"
            case .warn: return "[!]\(entry.name) warn: \(entry.result.detail ?? "")\n"
            case .fail: return "[-]\(entry.name) failed: \(entry.result.detail ?? "")\n"
            }
        }.joined()
        body += "\(endpoint.rawValue) check \(passed ? "passed" : "failed")\n"
        return body
    }

    /// The IETF "Health Check Response Format for HTTP APIs" draft
    /// (draft-inadarei-api-health-check, media type `application/health+json`): the
    /// aggregate `status`, and under `checks` one array per check, keyed by its name,
    /// with `status`, `output` (the detail), `observedValue`/`observedUnit` when
    /// measured, `componentType`, `affectedEndpoints` (which of /livez, /readyz, /healthz
    /// it counts for) and `time`.
    public func healthJSON(serviceID: String, at date: Date = Date()) -> Data {
        let time = ISO8601DateFormatter().string(from: date)
        var checks: [String: [HealthJSON.Check]] = [:]
        for entry in entries {
            let affected = HealthEndpoint.allCases.filter { $0.includes(entry.scope) }.map { "/\($0.rawValue)" }
            checks[entry.name] = [HealthJSON.Check(
                componentId: entry.name, componentType: entry.componentType, status: entry.result.status.rawValue,
                output: entry.result.detail, observedValue: entry.result.observedValue,
                observedUnit: entry.result.observedUnit, affectedEndpoints: affected, time: time)]
        }
        let document = HealthJSON(status: status.rawValue, serviceId: serviceID,
                                  description: "aegis node \(serviceID): /\(endpoint.rawValue)", checks: checks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(document)) ?? Data("{\"status\":\"\(status.rawValue)\"}".utf8)
    }
}

/// The `application/health+json` document.
struct HealthJSON: Codable, Hashable {
    struct Check: Codable, Hashable {
        var componentId: String
        var componentType: String
        var status: String
        var output: String?
        var observedValue: Double?
        var observedUnit: String?
        var affectedEndpoints: [String]
        var time: String
    }

    var status: String
    var serviceId: String
    var description: String
    var checks: [String: [Check]]
}
