public import Hummingbird

/// More admin endpoints and health checks, contributed by a feature (backups, a
/// replication link) without the admin server knowing it.
public protocol AdminExtension: Sendable {
    /// Adds routes. `authorize` returns the refusal to send when the request lacks the
    /// admin token (`nil`: go on).
    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?)
    /// Checks the feature registers in the node's `HealthRegistry` when the admin server
    /// is created. A dependency (a backup target, a link to another cluster) uses scope
    /// `.dependency`: it fails `/healthz` and its own path, never `/livez` or `/readyz`.
    func healthChecks() -> [HealthCheck]
}

extension AdminExtension {
    /// No checks.
    public func healthChecks() -> [HealthCheck] { [] }
}
