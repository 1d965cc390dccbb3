import NIOConcurrencyHelpers

/// The outcome of a health check (the IETF health check draft's `status`).
public enum HealthStatus: String, Sendable, Hashable, Codable, Comparable {
    /// Healthy.
    case pass
    /// Healthy, with a concern worth a look (disk filling, a certificate expiring soon).
    /// Never fails an endpoint.
    case warn
    /// Unhealthy: the endpoints the check belongs to fail.
    case fail

    private var severity: Int {
        switch self {
        case .pass: return 0
        case .warn: return 1
        case .fail: return 2
        }
    }

    public static func < (lhs: HealthStatus, rhs: HealthStatus) -> Bool { lhs.severity < rhs.severity }
}

/// What one run of a check found.
public struct HealthCheckResult: Sendable, Hashable {
    /// pass, warn or fail.
    public var status: HealthStatus
    /// Why it warns or fails, or what it measured (the draft's `output`); something a
    /// person can act on.
    public var detail: String?
    /// The measured value, if any (the draft's `observedValue`).
    public var observedValue: Double?
    /// Its unit (`bytes`, `s`, `entries`, …).
    public var observedUnit: String?

    /// Creates a result.
    public init(status: HealthStatus, detail: String? = nil, observedValue: Double? = nil, observedUnit: String? = nil) {
        self.status = status
        self.detail = detail
        self.observedValue = observedValue
        self.observedUnit = observedUnit
    }

    /// A passing result.
    public static func pass(_ detail: String? = nil) -> HealthCheckResult { HealthCheckResult(status: .pass, detail: detail) }
    /// A warning.
    public static func warn(_ detail: String) -> HealthCheckResult { HealthCheckResult(status: .warn, detail: detail) }
    /// A failure.
    public static func fail(_ detail: String) -> HealthCheckResult { HealthCheckResult(status: .fail, detail: detail) }

    /// The same result with a measured value.
    public func observed(_ value: Double, _ unit: String) -> HealthCheckResult {
        var copy = self
        copy.observedValue = value
        copy.observedUnit = unit
        return copy
    }
}

/// Which endpoints a check counts for.
public enum HealthCheckScope: String, Sendable, Hashable, Codable {
    /// The process itself: `/livez`, `/readyz` and `/healthz`. A failing liveness check
    /// tells the orchestrator to restart the process, so only the process may fail it —
    /// never a peer, a disk or another dependency.
    case liveness
    /// Whether the node can serve linearizable requests now: `/readyz` and `/healthz`.
    case readiness
    /// A dependency or a concern (disk, backups, certificates, a replication link):
    /// `/healthz` only; it never fails `/livez` or `/readyz`.
    case dependency
}

/// One health check in a `HealthRegistry`: a name, the endpoints it counts for, and a
/// function that runs it.
///
/// A check answers from state its component keeps (the last backup, the link's last
/// contact, a `statvfs`): it must not block on the network, since every probe runs it.
public struct HealthCheck: Sendable {
    /// The check's name: lowercase letters, digits and `-`. It names the check in every
    /// answer, in `?exclude=NAME` and in the per-check paths (`/healthz/NAME`).
    public var name: String
    /// The endpoints it counts for.
    public var scope: HealthCheckScope
    /// The draft's `componentType` (`system`, `datastore`, `component`).
    public var componentType: String
    /// Runs the check.
    public var run: @Sendable () async -> HealthCheckResult

    /// Creates a check.
    public init(name: String, scope: HealthCheckScope, componentType: String = "component",
                run: @escaping @Sendable () async -> HealthCheckResult) {
        self.name = name
        self.scope = scope
        self.componentType = componentType
        self.run = run
    }

    /// `true` if `name` is a valid check name.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-")
        }
    }
}

/// Why a check was not registered.
public struct HealthRegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public var description: String
}

/// The node's health checks: every component (the node itself, TLS, backups, a
/// replication link) registers its checks here, and `/livez`, `/readyz` and `/healthz`
/// evaluate them. Thread-safe; checks may be registered at any time.
public final class HealthRegistry: Sendable {
    private let checks = NIOLockedValueBox<[HealthCheck]>([])

    /// Creates an empty registry.
    public init() {}

    /// Registers a check.
    ///
    /// - Throws: `HealthRegistryError` for an invalid name or one already registered.
    public func register(_ check: HealthCheck) throws(HealthRegistryError) {
        guard HealthCheck.isValidName(check.name) else {
            throw HealthRegistryError(description: "'\(check.name)' is not a valid check name: use 1 to 64 lowercase letters, digits and '-'")
        }
        let added = checks.withLockedValue { list -> Bool in
            guard !list.contains(where: { $0.name == check.name }) else { return false }
            list.append(check)
            return true
        }
        guard added else { throw HealthRegistryError(description: "a health check named '\(check.name)' is already registered") }
    }

    /// Every check, in registration order.
    public var all: [HealthCheck] { checks.withLockedValue { $0 } }

    /// The checks an endpoint runs, in registration order.
    public func checks(for endpoint: HealthEndpoint) -> [HealthCheck] {
        all.filter { endpoint.includes($0.scope) }
    }

    /// Runs the checks of `endpoint` (all at once), except `excluded`, or only the one
    /// named `only`; `nil` when `only` names no check of that endpoint.
    public func evaluate(_ endpoint: HealthEndpoint, excluding excluded: Set<String> = [], only: String? = nil) async
        -> HealthReport? {
        var selected = checks(for: endpoint).filter { !excluded.contains($0.name) }
        if let only {
            selected = selected.filter { $0.name == only }
            if selected.isEmpty { return nil }
        }
        let results = await withTaskGroup(of: (Int, HealthCheckResult).self) { group in
            for (index, check) in selected.enumerated() {
                group.addTask { (index, await check.run()) }
            }
            var results = [HealthCheckResult?](repeating: nil, count: selected.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
        let entries = zip(selected, results).map { check, result in
            HealthReport.Entry(name: check.name, scope: check.scope, componentType: check.componentType,
                               result: result ?? .fail("the check returned no result"))
        }
        return HealthReport(endpoint: endpoint, entries: entries)
    }
}

/// The three health endpoints.
public enum HealthEndpoint: String, Sendable, Hashable, CaseIterable {
    /// The process is alive (liveness checks only).
    case livez
    /// The node can serve linearizable requests (liveness and readiness checks).
    case readyz
    /// Everything, dependencies included.
    case healthz

    /// Whether checks of `scope` count for this endpoint.
    public func includes(_ scope: HealthCheckScope) -> Bool {
        switch (self, scope) {
        case (_, .liveness): return true
        case (.readyz, .readiness), (.healthz, .readiness), (.healthz, .dependency): return true
        default: return false
        }
    }
}

/// The outcome of an endpoint: each check's result and the aggregate.
public struct HealthReport: Sendable, Hashable {
    /// One check's result.
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var scope: HealthCheckScope
        public var componentType: String
        public var result: HealthCheckResult
    }

    /// The endpoint evaluated.
    public var endpoint: HealthEndpoint
    /// The results, in registration order.
    public var entries: [Entry]

    /// The worst status of any check (`pass` with none).
    public var status: HealthStatus { entries.map(\.result.status).max() ?? .pass }
    /// `true` unless a check failed (warnings do not fail an endpoint).
    public var passed: Bool { status != .fail }
}
