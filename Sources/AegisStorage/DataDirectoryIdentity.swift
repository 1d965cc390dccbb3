#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who a data directory belongs to: written once when the directory is created, checked
/// on every start.
///
/// A node must never mistake a directory for its own: a directory of another node or
/// another cluster (a wrong path, a copied disk) would make it vote and serve with a log
/// that is not its own, and an *empty* directory where its data used to be (a replaced
/// disk) would make it a founding voter with no log, able to elect a stale leader and
/// lose acknowledged writes. etcd guards the same way (member IDs stored in the data
/// directory, `--initial-cluster-state`).
///
/// On disk: the file `identity` in the data directory, UTF-8 `name = value` lines
/// (`#` starts a comment), written to a temporary file, fsynced, renamed, and the
/// directory fsynced:
///
/// ```
/// format = 1
/// cluster-id = prod
/// cluster-uuid = 3F2A…        (empty until a joining node learns it)
/// node-id = n1
/// membership = member         (or: awaiting-add)
/// ```
public struct DataDirectoryIdentity: Sendable, Hashable {
    /// Whether the node may act as a voter with this directory.
    public enum Membership: String, Sendable, Hashable {
        /// The directory holds a member's log (founding member, or added and caught up).
        case member
        /// The directory was created empty for a node that is to be added to an
        /// existing cluster: it must not vote until the log it receives contains the
        /// change that adds it.
        case awaitingAdd = "awaiting-add"
    }

    /// The file name inside the data directory.
    public static let fileName = "identity"
    /// The format version this build writes and reads.
    public static let formatVersion = 1

    /// The cluster ID (the name peers present in the handshake).
    public var clusterID: String
    /// The UUID of this incarnation of the cluster; `nil` until known.
    public var clusterUUID: String?
    /// This node.
    public var nodeID: NodeIDString
    /// Whether the node may vote.
    public var membership: Membership

    /// A node ID as text (the storage module does not interpret it).
    public typealias NodeIDString = String

    /// Creates an identity.
    public init(clusterID: String, clusterUUID: String?, nodeID: NodeIDString, membership: Membership) {
        self.clusterID = clusterID
        self.clusterUUID = clusterUUID
        self.nodeID = nodeID
        self.membership = membership
    }

    /// The path of the identity file of `directory`.
    public static func path(in directory: String) -> String { directory + "/" + fileName }

    /// Reads the identity of `directory`; `nil` when it has none.
    ///
    /// - Throws: `StorageError.unsupportedFormat` for a damaged or unknown file.
    public static func read(from directory: String) throws(StorageError) -> DataDirectoryIdentity? {
        let path = path(in: directory)
        guard access(path, F_OK) == 0 else { return nil }
        let bytes = try FileIO.readAll(path)
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Writes the identity durably (temporary file, fsync, rename, directory fsync).
    public func write(to directory: String) throws(StorageError) {
        try FileIO.makeDirectory(directory)
        try FileIO.writeDurably(Array(encoded().utf8), to: Self.path(in: directory), directory: directory)
    }

    /// The file's text.
    public func encoded() -> String {
        """
        # Aegis data directory identity: written when the directory was created. Do not edit.
        format = \(Self.formatVersion)
        cluster-id = \(clusterID)
        cluster-uuid = \(clusterUUID ?? "")
        node-id = \(nodeID)
        membership = \(membership.rawValue)

        """
    }

    /// Parses the file's text.
    static func parse(_ text: String, path: String) throws(StorageError) -> DataDirectoryIdentity {
        var fields: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
                throw .unsupportedFormat(path: path, detail: "expected `name = value`, got '\(line)'")
            }
            fields[trimmed(parts[0])] = trimmed(parts[1])
        }
        guard fields["format"] == String(formatVersion) else {
            throw .unsupportedFormat(path: path, detail: "identity format '\(fields["format"] ?? "")' (expected \(formatVersion))")
        }
        guard let clusterID = fields["cluster-id"], !clusterID.isEmpty,
              let nodeID = fields["node-id"], !nodeID.isEmpty,
              let membership = Membership(rawValue: fields["membership"] ?? "") else {
            throw .unsupportedFormat(path: path, detail: "cluster-id, node-id and membership are required")
        }
        let uuid = fields["cluster-uuid"] ?? ""
        return DataDirectoryIdentity(clusterID: clusterID, clusterUUID: uuid.isEmpty ? nil : uuid, nodeID: nodeID,
                                     membership: membership)
    }

    private static func trimmed(_ s: Substring) -> String {
        String(s.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }

    /// Why this identity cannot be used by node `nodeID` of cluster `clusterID`, or
    /// `nil` when it can.
    public func mismatch(clusterID: String, nodeID: NodeIDString) -> String? {
        if self.clusterID != clusterID {
            return "belongs to cluster '\(self.clusterID)', not '\(clusterID)'"
        }
        if self.nodeID != nodeID {
            return "belongs to node '\(self.nodeID)', not '\(nodeID)'"
        }
        return nil
    }
}
