public import CoreMetrics
public import Prometheus

/// Process-wide metrics setup for `aegis serve`.
public enum AegisMetrics {
    /// Creates a Prometheus registry and bootstraps swift-metrics with a factory that
    /// records into it, so every metric of the process (RESP server, HTTP admin, node
    /// runtime) appears on `/metrics`. Call it once per process, before creating the
    /// servers; swift-metrics refuses a second bootstrap.
    public static func bootstrapPrometheus() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// A metrics factory that records into `registry` without touching the global
    /// `MetricsSystem` (for tests and for several servers in one process).
    public static func factory(recordingInto registry: PrometheusCollectorRegistry) -> any MetricsFactory {
        PrometheusMetricsFactory(registry: registry)
    }
}
