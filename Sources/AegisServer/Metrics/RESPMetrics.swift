import CoreMetrics

/// The RESP server's metrics, created once per server through swift-metrics.
///
/// - `aegis_resp_commands_total{command}`: commands received, by lower-case name
///   (`unknown` for names the server does not know).
/// - `aegis_resp_errors_total{code}`: error replies, by error code (`ERR`, `NOAUTH`,
///   `CLUSTERDOWN`, …; `protocol` for malformed input).
/// - `aegis_resp_connections_total`: connections accepted.
/// - `aegis_resp_connections_active`: connections open now.
/// - `aegis_resp_limit_closes_total{limit}`: connections refused or closed at a
///   limit (`max_clients`, `output_buffer_hard`, `output_buffer_soft`,
///   `partial_requests`, `auth_failures`).
struct RESPMetrics: Sendable {
    private let commands: [String: Counter]
    private let unknownCommand: Counter
    private let errors: [String: Counter]
    private let otherErrors: Counter
    let connectionsAccepted: Counter
    let connectionsActive: Gauge
    private let limitCloses: [String: Counter]
    private let otherLimitCloses: Counter

    /// The limits whose closes are counted separately.
    static let limitNames = ["max_clients", "output_buffer_hard", "output_buffer_soft", "partial_requests",
                             "auth_failures"]

    /// Error codes the server sends, each with its own counter.
    static let errorCodes = ["ERR", "WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM", "NOPROTO", "TRYAGAIN", "CLUSTERDOWN",
                             "TIMEOUT", "UNAVAILABLE", "DENIED", "protocol"]

    init(factory: any MetricsFactory) {
        var commands: [String: Counter] = [:]
        for name in RESPCommandTable.names {
            commands[name] = Counter(label: "aegis_resp_commands_total", dimensions: [("command", name.lowercased())], factory: factory)
        }
        self.commands = commands
        unknownCommand = Counter(label: "aegis_resp_commands_total", dimensions: [("command", "unknown")], factory: factory)
        var errors: [String: Counter] = [:]
        for code in Self.errorCodes {
            errors[code] = Counter(label: "aegis_resp_errors_total", dimensions: [("code", code)], factory: factory)
        }
        self.errors = errors
        otherErrors = Counter(label: "aegis_resp_errors_total", dimensions: [("code", "other")], factory: factory)
        connectionsAccepted = Counter(label: "aegis_resp_connections_total", factory: factory)
        connectionsActive = Gauge(label: "aegis_resp_connections_active", factory: factory)
        var limitCloses: [String: Counter] = [:]
        for name in Self.limitNames {
            limitCloses[name] = Counter(label: "aegis_resp_limit_closes_total", dimensions: [("limit", name)], factory: factory)
        }
        self.limitCloses = limitCloses
        otherLimitCloses = Counter(label: "aegis_resp_limit_closes_total", dimensions: [("limit", "other")], factory: factory)
    }

    /// Counts one connection refused or closed at the named limit.
    func recordLimitClose(_ limit: String) {
        (limitCloses[limit] ?? otherLimitCloses).increment()
    }

    /// Counts one command by its upper-case name.
    func recordCommand(_ name: String) {
        (commands[name] ?? unknownCommand).increment()
    }

    /// Counts one error reply by the first word of its text.
    func recordError(_ text: String) {
        let code = text.prefix { $0 != " " }
        (errors[String(code)] ?? otherErrors).increment()
    }

    /// Counts one protocol error (malformed input or a limit hit).
    func recordProtocolError() {
        (errors["protocol"] ?? otherErrors).increment()
    }
}
