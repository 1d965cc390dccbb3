import AegisOperations
import AegisServer
import ArgumentParser
import Foundation

/// Where the cluster tools connect.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The node's HTTP admin address (host:port).", valueName: "host:port"))
    var admin: String = DevDefaults.adminAddress

    @OptionGroup var security: ToolSecurityOptions

    @Flag(help: "Print the node's JSON answer instead of a table.") var json = false

    /// Sends a request to the admin API and returns the body; non-2xx answers throw
    /// with the server's error text.
    func request(_ method: String, _ path: String) async throws -> Data {
        try await request(method, path, bodyData: nil)
    }

    /// Sends a request with a JSON body.
    func request(_ method: String, _ path: String, body: some Encodable) async throws -> Data {
        try await request(method, path, bodyData: try JSONEncoder().encode(body))
    }

    /// Sends a request with a body as is (a YAML file, raw value bytes).
    func request(_ method: String, _ path: String, rawBody: Data,
                 contentType: String = "application/octet-stream") async throws -> Data {
        try await request(method, path, bodyData: rawBody, contentType: contentType)
    }

    private func request(_ method: String, _ path: String, bodyData: Data?,
                         contentType: String = "application/json") async throws -> Data {
        try await access.request(method, path, at: admin, body: bodyData, contentType: contentType)
    }

    /// The token and TLS context of these options.
    var access: AdminAccess {
        get throws { AdminAccess(token: security.resolvedAdminToken, tls: try security.clientContext()) }
    }

    /// Prints a cluster status answer as JSON or as a table.
    func printStatus(_ data: Data) throws {
        if json {
            print(String(decoding: data, as: UTF8.self), terminator: "")
            return
        }
        let status = try JSONDecoder().decode(ClusterStatusDocument.self, from: data)
        print("answered by \(status.nodeID) (\(status.role)), term \(status.term), commit \(status.commitIndex), applied \(status.appliedIndex)")
        print("leader: \(status.leader.map { "\($0) at \(status.leaderClientAddress ?? "?")" } ?? "none elected")")
        if let cluster = status.cluster {
            print("cluster: \(cluster.state), \(cluster.healthyNodes) of \(cluster.totalNodes) members healthy, "
                + "quorum \(cluster.quorumSize) of \(cluster.votingNodes) voters \(cluster.hasQuorum ? "present" : "LOST")")
        }
        let rows = [["ID", "ROLE", "STATUS", "CLIENT", "PEER", "MATCH", "LAG", "HEARD"]] + status.members.map { member in
            [member.id, member.role, member.status ?? "-", member.clientAddress, member.peerAddress,
             member.matchIndex.map(String.init) ?? "-", member.lag.map(String.init) ?? "-",
             member.lastHeardMs.map { "\($0) ms ago" } ?? "-"]
        }
        let widths = (0 ..< rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let line = zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
            print(line.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
        }
    }
}

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect and change an Aegis cluster's membership over the HTTP admin API.",
        discussion: """
        Talks to one node's admin API (--admin, default \(DevDefaults.adminAddress)). Every call needs the admin token \
        (--admin-token, $AEGIS_ADMIN_TOKEN, or the one `aegis dev` keeps in its data folder); with TLS the tools trust \
        --tls-ca (or $AEGIS_TLS_CA, or the dev CA). Changes go through Raft; any node forwards them to the leader.

        Adding a node safely: start it (aegis serve … --join), add it as a learner, wait until its lag is small in \
        `aegis cluster status`, then promote it to a voter.

        Examples:
          aegis cluster status
          aegis cluster add node4 --peer 127.0.0.1:9004 --client 127.0.0.1:7004
          aegis cluster promote node4
          aegis cluster transfer-leader node2
          aegis cluster remove node4
          aegis cluster restart-rolling
        """,
        subcommands: [Status.self, Add.self, Remove.self, Promote.self, TransferLeader.self, ClusterRestartCommand.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show members, roles, health, leader, term, indexes and each member's lag.",
            discussion: """
            STATUS is the answering node's failure detector's verdict (starting, healthy, suspect, down, leaving, \
            left); HEARD is how long ago that node last heard from the member. MATCH and LAG come from the leader: \
            its own view, or on another node the leader's last report (at most one heartbeat interval old).

            Examples:
              aegis cluster status
              aegis cluster status --admin 127.0.0.1:8002 --json
            """)
        @OptionGroup var options: AdminOptions

        func run() async throws {
            try options.printStatus(try await options.request("GET", "/v1/cluster"))
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a member, as a learner unless --voter.",
            discussion: """
            A learner receives the log but does not vote; promote it once it caught up. Adding a voter directly \
            changes the quorum at once, before the new node has the log.

            Examples:
              aegis cluster add node4 --peer 127.0.0.1:9004 --client 127.0.0.1:7004
            """)
        @Argument(help: "The new member's node ID.") var id: String
        @Option(help: ArgumentHelp("Its Raft peer address.", valueName: "host:port")) var peer: String
        @Option(help: ArgumentHelp("Its RESP client address.", valueName: "host:port")) var client: String
        @Flag(help: "Add as a voter right away instead of a learner.") var voter = false
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let body = AddMemberRequest(id: id, peerAddress: peer, clientAddress: client, learner: !voter)
            try options.printStatus(try await options.request("POST", "/v1/cluster/members", body: body))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member (voter or learner).",
            discussion: """
            Removing the leader makes it step down after the change commits.

            Examples:
              aegis cluster remove node4
            """)
        @Argument(help: "The member's node ID.") var id: String
        @OptionGroup var options: AdminOptions

        func run() async throws {
            try options.printStatus(try await options.request("DELETE", "/v1/cluster/members/\(pathComponent(id))"))
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote a learner to a voter.",
            discussion: """
            Examples:
              aegis cluster promote node4
            """)
        @Argument(help: "The learner's node ID.") var id: String
        @OptionGroup var options: AdminOptions

        func run() async throws {
            try options.printStatus(try await options.request("POST", "/v1/cluster/members/\(pathComponent(id))/promote"))
        }
    }

    struct TransferLeader: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "transfer-leader",
            abstract: "Hand leadership to another voter.",
            discussion: """
            Without a target, the most up-to-date voter takes over. Useful before restarting the leader.

            Examples:
              aegis cluster transfer-leader node2
              aegis cluster transfer-leader
            """)
        @Argument(help: "The voter to hand leadership to.") var target: String?
        @OptionGroup var options: AdminOptions

        func run() async throws {
            try options.printStatus(try await options.request("POST", "/v1/cluster/transfer-leader", body: TransferLeaderRequest(target: target)))
        }
    }
}

/// Percent-encodes a path component.
private func pathComponent(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
}
