import AegisKV
public import AegisTransport
import Metrics

/// The runtime's metrics, recorded through swift-metrics (whatever backend the
/// process bootstrapped, e.g. Prometheus). Every metric carries the node's id.
struct RuntimeMetrics {
    let proposals: Counter
    let commits: Counter
    let elections: Counter
    let leaderChanges: Counter
    let fsync: Timer
    let applyLag: Recorder
    /// Peer messages the core refused as invalid (malformed values, wrong ranges).
    let invalidMessages: Counter
    /// Passes of the node loop longer than `NodeConfiguration.slowLoopWarning`.
    let slowLoops: Counter
    let node: String

    init(node: String) {
        self.node = node
        let dims = [("node", node)]
        proposals = Counter(label: "aegis_proposals_total", dimensions: dims)
        commits = Counter(label: "aegis_applied_entries_total", dimensions: dims)
        elections = Counter(label: "aegis_elections_total", dimensions: dims)
        leaderChanges = Counter(label: "aegis_leader_changes_total", dimensions: dims)
        fsync = Timer(label: "aegis_fsync_seconds", dimensions: dims)
        applyLag = Recorder(label: "aegis_apply_lag_entries", dimensions: dims, aggregate: false)
        invalidMessages = Counter(label: "aegis_invalid_peer_messages_total", dimensions: dims)
        slowLoops = Counter(label: "aegis_slow_loop_iterations_total", dimensions: dims)
    }

    /// Per-peer message and byte counts, from the transport's counters.
    func updateTransport(_ stats: TransportStats) {
        for (peer, p) in stats.peers {
            let dims = [("node", node), ("peer", peer.rawValue)]
            Gauge(label: "aegis_peer_messages_sent", dimensions: dims).record(Double(p.messagesSent))
            Gauge(label: "aegis_peer_bytes_sent", dimensions: dims).record(Double(p.bytesSent))
            Gauge(label: "aegis_peer_messages_dropped", dimensions: dims).record(Double(p.messagesDropped))
        }
        Gauge(label: "aegis_messages_received", dimensions: [("node", node)]).record(Double(stats.messagesReceived))
        Gauge(label: "aegis_bytes_received", dimensions: [("node", node)]).record(Double(stats.bytesReceived))
    }

    /// The size of the active-active CRDT metadata (on a cluster in a group).
    func updateActiveActive(_ summary: ActiveActiveMetadataSummary) {
        let dims = [("node", node)]
        Gauge(label: "aegis_aa_metadata_keys", dimensions: dims).record(Double(summary.keys))
        Gauge(label: "aegis_aa_metadata_empty_parts", dimensions: dims).record(Double(summary.emptyParts))
    }
}

extension PeerAddress {
    /// Parses `host:port`.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              port > 0, port < 65_536 else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }
}
