public import AegisServer
public import Foundation

/// The rules of a rolling restart (`aegis cluster restart-rolling`): which node goes
/// next, and when the cluster is ready for it.
public enum RollingRestart {
    /// Followers first (in the order given), the leader last: the leader is restarted
    /// once, after every other node, and hands leadership over when it stops.
    public static func order(_ nodes: [String], leader: String?) -> [String] {
        nodes.filter { $0 != leader } + nodes.filter { $0 == leader }
    }

    /// `nil` when the leader's view shows every member (but those that left) healthy and
    /// at most `maxLag` entries behind; otherwise why not.
    public static func notCaughtUp(_ view: ClusterStatusDocument, maxLag: UInt64) -> String? {
        guard view.role == "leader" else { return "\(view.nodeID) is \(view.role), not the leader" }
        var behind: [String] = []
        for member in view.members where member.status != "left" {
            if member.status != "healthy" {
                behind.append("\(member.id) is \(member.status ?? "of unknown status")")
            } else if let lag = member.lag {
                if lag > maxLag { behind.append("\(member.id) is \(lag) entries behind") }
            } else {
                behind.append("\(member.id) has no known lag")
            }
        }
        return behind.isEmpty ? nil : behind.joined(separator: ", ")
    }
}

/// The nodes a rolling restart goes through: `nodes.json` as `aegis dev` writes it
/// (`{"nodes": [{"id", "pid", "admin", "log", "command": [...]}, …]}`; other fields are
/// ignored). With a command, `aegis cluster restart-rolling` starts the node itself and
/// writes the new pid back.
public struct RollingRestartNodes: Codable, Sendable, Hashable {
    /// One node.
    public struct Node: Codable, Sendable, Hashable {
        public var id: String
        /// Its admin address (`host:port`).
        public var admin: String
        /// The process ID of its running process, if known.
        public var pid: Int32?
        /// Where its output goes (appended).
        public var log: String?
        /// The exact command that starts it (the executable first).
        public var command: [String]?

        /// Creates a node.
        public init(id: String, admin: String, pid: Int32? = nil, log: String? = nil, command: [String]? = nil) {
            self.id = id
            self.admin = admin
            self.pid = pid
            self.log = log
            self.command = command
        }
    }

    public var nodes: [Node]

    /// Creates a node list.
    public init(nodes: [Node]) { self.nodes = nodes }

    /// The largest nodes file read, in bytes.
    public static let maxFileBytes = 1 << 20
    /// The most nodes.
    public static let maxNodes = 64

    /// Decodes and checks a nodes file.
    public static func decode(_ data: Data) throws(RunbookError) -> RollingRestartNodes {
        guard data.count <= maxFileBytes else { throw RunbookError("the nodes file is larger than \(maxFileBytes) bytes") }
        let decoded: RollingRestartNodes
        do {
            decoded = try JSONDecoder().decode(RollingRestartNodes.self, from: data)
        } catch {
            throw RunbookError("not a nodes file ({\"nodes\": [{\"id\", \"admin\", \"command\"}, …]}): \(error)")
        }
        guard !decoded.nodes.isEmpty, decoded.nodes.count <= maxNodes else {
            throw RunbookError("a nodes file lists 1 to \(maxNodes) nodes")
        }
        guard Set(decoded.nodes.map(\.id)).count == decoded.nodes.count else { throw RunbookError("a node ID is listed twice") }
        for node in decoded.nodes where node.id.isEmpty || node.admin.isEmpty || node.command?.isEmpty == true {
            throw RunbookError("node '\(node.id)': an ID, an admin address and (if given) a non-empty command are needed")
        }
        return decoded
    }
}
