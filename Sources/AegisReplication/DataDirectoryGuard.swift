import Foundation
import AegisKV
public import AegisStorage

/// How a node's data directory is to be used, decided before anything is written.
///
/// The rules (etcd's `--initial-cluster-state`, with the identity file of
/// ``DataDirectoryIdentity``):
/// - A directory with an identity is used only by the node and cluster it names.
/// - An empty (or missing) directory bootstraps a new cluster only with
///   ``InitialClusterState/new``; with `join` it starts as a node *awaiting addition*
///   (it does not vote until the log it receives adds it); otherwise the node refuses
///   to start: it was a member and lost its data, and must be removed and added back.
/// - A directory with a log but no identity (written by an older build, or a crash
///   between the founding write and the identity) is adopted.
public enum DataDirectoryGuard {
    /// Whether this start founds a new cluster.
    public enum InitialClusterState: String, Sendable, CaseIterable {
        /// Found a new cluster when the data directory is empty.
        case new
        /// Join an existing cluster: an empty data directory is refused (or, with
        /// `join`, waits to be added).
        case existing
    }

    /// What the node does with its directory.
    public enum Plan: Sendable, Hashable {
        /// Found a new cluster: bootstrap the log with the founding voters, then
        /// write `identity`.
        case bootstrap(identity: DataDirectoryIdentity)
        /// Start with the directory as it is; write `identity` first if `write`.
        case start(identity: DataDirectoryIdentity, write: Bool)
    }

    /// Why a node refuses to start. The message says what to do.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        /// What is wrong and how to fix it.
        public var description: String
    }

    /// Decides how to use `directory` for node `nodeID` of `clusterID`. Reads only.
    ///
    /// - Parameters:
    ///   - clusterUUID: the UUID to found a new cluster with (`nil`: derived from the
    ///     cluster ID and the founding members, so every founding node agrees).
    ///   - founders: the founding members' `id=address` descriptions (for the derived UUID).
    public static func plan(directory: String, clusterID: String, nodeID: String, state: InitialClusterState,
                            join: Bool, clusterUUID: String?, founders: [String]) throws -> Plan {
        let existing = try DataDirectoryIdentity.read(from: directory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let hasData = names.contains { $0 != DataDirectoryIdentity.fileName && !$0.hasPrefix(".") }
        if let existing {
            if let why = existing.mismatch(clusterID: clusterID, nodeID: nodeID) {
                throw Refusal(description: "the data directory \(directory) \(why); refusing to start "
                    + "(check --data-dir, --id and --cluster-id)")
            }
            if !hasData && existing.membership == .member {
                throw Refusal(description: "the data directory \(directory) belongs to \(nodeID) of cluster "
                    + "'\(clusterID)' but its log is gone; refusing to start: a member that lost its log must not "
                    + "vote. " + rejoinAdvice(nodeID))
            }
            return .start(identity: existing, write: false)
        }
        if hasData {
            // Adopt a directory from an older build (or a crash right after founding).
            let uuid = state == .new ? (clusterUUID ?? derivedUUID(clusterID: clusterID, founders: founders)) : clusterUUID
            return .start(identity: DataDirectoryIdentity(clusterID: clusterID, clusterUUID: uuid, nodeID: nodeID,
                                                          membership: join ? .awaitingAdd : .member), write: true)
        }
        if join {
            return .start(identity: DataDirectoryIdentity(clusterID: clusterID, clusterUUID: clusterUUID, nodeID: nodeID,
                                                          membership: .awaitingAdd), write: true)
        }
        guard state == .new else {
            throw Refusal(description: "the data directory \(directory) is empty and --initial-cluster-state is "
                + "'existing'; refusing to start as a founding voter with an empty log. If this node was a member "
                + "and lost its data: " + rejoinAdvice(nodeID) + " To found a new cluster instead, pass "
                + "--initial-cluster-state new to every founding member.")
        }
        let uuid = clusterUUID ?? derivedUUID(clusterID: clusterID, founders: founders)
        return .bootstrap(identity: DataDirectoryIdentity(clusterID: clusterID, clusterUUID: uuid, nodeID: nodeID,
                                                          membership: .member))
    }

    static func rejoinAdvice(_ nodeID: String) -> String {
        "remove it from the cluster (`aegis cluster remove \(nodeID)`), add it back as a learner "
            + "(`aegis cluster add \(nodeID) --peer HOST:PORT --client HOST:PORT`), start it with an empty data "
            + "directory and --join, and once it has caught up promote it (`aegis cluster promote \(nodeID)`)."
    }

    /// A UUID every founding member computes alike: SHA-256 of the cluster ID and the
    /// sorted founding members, formatted as a UUID (version 8, RFC 9562).
    public static func derivedUUID(clusterID: String, founders: [String]) -> String {
        var bytes = Array(SHA256.hash(Array((["aegis-cluster", clusterID] + founders.sorted()).joined(separator: "\n").utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return format(bytes)
    }

    /// A random UUID (version 4).
    public static func randomUUID() -> String { UUID().uuidString }

    static func format(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { String(format: "%02X", $0) }.joined()
        let c = Array(hex)
        return [String(c[0..<8]), String(c[8..<12]), String(c[12..<16]), String(c[16..<20]), String(c[20..<32])]
            .joined(separator: "-")
    }
}
