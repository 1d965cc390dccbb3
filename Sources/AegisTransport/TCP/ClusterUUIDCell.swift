internal import NIOConcurrencyHelpers

/// The cluster UUID as one transport knows it, shared by its inbound and outbound
/// connections.
///
/// Every handshake carries the sender's cluster UUID (empty when the sender does not
/// know it yet: a node that joins with an empty data directory). A connection whose
/// UUID differs from a known local one is refused: it comes from another incarnation of
/// a cluster with the same cluster ID (for example a cluster restored from a backup).
/// A node that does not know its UUID adopts the first one a peer of its cluster
/// presents, and reports it once through `onLearned` so that it can be persisted.
final class ClusterUUIDCell: Sendable {
    private let value: NIOLockedValueBox<String>
    private let onLearned: (@Sendable (String) -> Void)?

    init(_ uuid: String?, onLearned: (@Sendable (String) -> Void)?) {
        value = NIOLockedValueBox(uuid ?? "")
        self.onLearned = onLearned
    }

    /// The UUID this node presents; empty while unknown.
    var current: String { value.withLockedValue { $0 } }

    /// Checks a peer's UUID: `nil` to accept, or why to refuse. Adopts it when the local
    /// one is unknown.
    func admit(_ remote: String) -> String? {
        guard !remote.isEmpty else { return nil }
        let (refusal, learned) = value.withLockedValue { local -> (String?, Bool) in
            if local.isEmpty {
                local = remote
                return (nil, true)
            }
            return local == remote ? (nil, false)
                : ("cluster UUID \(remote) is not this node's cluster UUID \(local) (another incarnation of the cluster)", false)
        }
        if learned { onLearned?(remote) }
        return refusal
    }
}
