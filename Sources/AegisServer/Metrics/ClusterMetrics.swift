import AegisCluster
import Prometheus

/// The cluster view as Prometheus gauges, set from the node's status at each scrape.
///
/// | Metric | |
/// |---|---|
/// | `aegis_cluster_state{state}` | 1 for the current `ClusterState`, 0 for the others |
/// | `aegis_cluster_members{status}` | members per `NodeStatus` |
/// | `aegis_cluster_quorum` | 1 while enough voters are healthy for a quorum |
/// | `aegis_cluster_member_status{member, status}` | 1 for each member's current status, 0 for the others |
/// | `aegis_cluster_member_lag_entries{member}` | entries the member is behind the leader (when known) |
/// | `aegis_cluster_member_last_heard_seconds{member}` | time since this node heard from it |
enum ClusterMetrics {
    static func update(_ registry: PrometheusCollectorRegistry, from status: BackendStatus) {
        guard let stats = status.cluster else { return }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], unit: String = "") -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aegis", subsystem: "cluster", metricName: name,
                                                                unitName: unit, helpText: help), labels: labels)
        }
        for state in AegisCluster.ClusterState.allCases {
            gauge("state", "1 for the cluster state this node sees, 0 for the others.", [("state", state.rawValue)])
                .set(state == stats.state ? 1.0 : 0.0)
        }
        gauge("quorum", "1 while enough voters are healthy for a quorum.").set(stats.hasQuorum ? 1.0 : 0.0)
        for nodeStatus in AegisCluster.NodeStatus.allCases {
            let count = status.members.filter { $0.health == nodeStatus }.count
            gauge("members", "Members by status, as this node's failure detector sees them.", [("status", nodeStatus.rawValue)])
                .set(Double(count))
        }
        for member in status.members {
            let id = member.id.rawValue
            for nodeStatus in AegisCluster.NodeStatus.allCases {
                gauge("member_status", "1 for the member's status as this node sees it, 0 for the others.",
                      [("member", id), ("status", nodeStatus.rawValue)])
                    .set(member.health == nodeStatus ? 1.0 : 0.0)
            }
            if let lag = member.lag {
                gauge("member_lag", "Entries the member is behind the leader's last index.", [("member", id)], unit: "entries")
                    .set(Double(lag))
            }
            if let heard = member.lastHeard {
                gauge("member_last_heard", "Seconds since this node last heard from the member.", [("member", id)], unit: "seconds")
                    .set(Double(ClusterStatusDocument.milliseconds(heard)) / 1000)
            }
        }
    }
}
