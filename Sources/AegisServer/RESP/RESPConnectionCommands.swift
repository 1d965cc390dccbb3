import AegisKV
import Foundation
import NIOCore

/// Connection and server commands: HELLO, AUTH, CLIENT, SELECT, COMMAND, CONFIG,
/// QUIT, RESET, READONLY, READWRITE and INFO.
extension RESPSession {
    /// Runs a command that reads or changes the connection's state. Returns the
    /// reply and whether the connection stays open.
    mutating func handleConnectionCommand(_ name: String, _ arguments: ArraySlice<ByteBuffer>) async -> (RESPValue, Bool) {
        let words = arguments.map { String(buffer: $0) }
        switch name {
        case "HELLO": return await hello(words)
        case "AUTH": return await authenticate(words)
        case "ACL": return (acl(words), true)
        case "CLIENT": return (client(words, raw: arguments), true)
        case "SELECT":
            guard let index = integer(arguments[arguments.startIndex]) else { return (RESPError.notInteger, true) }
            return (index == 0 ? .ok : .error("ERR DB index is out of range"), true)
        case "COMMAND": return (command(words), true)
        case "CONFIG": return (config(words), true)
        case "QUIT": return (.ok, false)
        case "RESET":
            await server.pubsub.watches.stop(clientID)
            watching = false
            version = .resp2
            self.name = nil
            library = (nil, nil)
            staleReads = false
            user = initialUser()
            transaction = nil
            watchedKeys = []
            return (.simpleString("RESET"), true)
        case "READONLY":
            staleReads = true
            return (.ok, true)
        case "READWRITE":
            staleReads = false
            return (.ok, true)
        default:
            return (RESPError.unknownCommand(name, arguments: words[...]), true)
        }
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`. Returns the
    /// reply and whether the connection stays open (see `RESPAuthThrottle`).
    private mutating func hello(_ words: [String]) async -> (RESPValue, Bool) {
        var requested = version
        if let first = words.first {
            guard let number = Int(first) else { return (.error("ERR Protocol version is not an integer or out of range"), true) }
            guard let parsed = RESPVersion(rawValue: number) else { return (.error("NOPROTO unsupported protocol version"), true) }
            requested = parsed
        }
        var newName: String?
        var credentials: (user: String, password: String)?
        var index = 1
        while index < words.count {
            switch words[index].uppercased() {
            case "AUTH" where index + 2 < words.count:
                credentials = (words[index + 1], words[index + 2])
                index += 3
            case "SETNAME" where index + 1 < words.count:
                guard Self.isValidName(words[index + 1]) else { return (Self.invalidNameError, true) }
                newName = words[index + 1]
                index += 2
            default:
                return (.error("ERR Syntax error in HELLO option '\(words[index].prefix(64))'"), true)
            }
        }
        if let credentials {
            let (reply, keepOpen) = await logIn(username: credentials.user, password: credentials.password)
            if case .error = reply { return (reply, keepOpen) }
        }
        guard authenticated else {
            return (.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"), true)
        }
        version = requested
        if let newName { name = newName }
        return (.map([
            RESPMapEntry(.bulk("server"), .bulk("redis")),
            RESPMapEntry(.bulk("version"), .bulk(AegisVersion.redisCompatibility)),
            RESPMapEntry(.bulk("proto"), .integer(Int64(version.rawValue))),
            RESPMapEntry(.bulk("id"), .integer(clientID)),
            RESPMapEntry(.bulk("mode"), .bulk("standalone")),
            RESPMapEntry(.bulk("role"), .bulk("master")),
            RESPMapEntry(.bulk("modules"), .array([])),
            RESPMapEntry(.bulk("aegis_version"), .bulk(AegisVersion.current)),
        ]), true)
    }

    /// `AUTH [username] password`.
    private mutating func authenticate(_ words: [String]) async -> (RESPValue, Bool) {
        guard words.count <= 2 else { return (RESPError.syntax, true) }
        if words.count == 1, let defaultUser = server.acl.user(named: "default"), defaultUser.noPassword, defaultUser.enabled {
            return (RESPError.authWithoutPassword, true)
        }
        return words.count == 2 ? await logIn(username: words[0], password: words[1])
                                : await logIn(username: "default", password: words[0])
    }

    /// Authenticates as `username`: `+OK`, or after a failure `-WRONGPASS`, logged at a
    /// bounded rate, delayed and finally answered by closing the connection as
    /// `RESPAuthThrottle` says. Returns the reply and whether the connection stays open.
    private mutating func logIn(username: String, password: String) async -> (RESPValue, Bool) {
        if let found = server.acl.authenticate(username: username, password: password) {
            user = found
            userGeneration = server.acl.generation
            return (.ok, true)
        }
        failedAuths += 1
        let throttle = server.configuration.authThrottle
        let fromAddress = remoteHost.map { server.authFailures.recordFailure(from: $0) } ?? 0
        let failures = max(failedAuths, fromAddress)
        let closing = failures >= throttle.maxFailures
        if closing { server.metrics.recordLimitClose("auth_failures") }
        server.authLog.notice("authentication failed", metadata: [
            "user": "\(username.prefix(64))", "remote": "\(remote)", "client": "\(clientID)",
            "failures": "\(failedAuths)", "address-failures": "\(fromAddress)", "closing": "\(closing)"])
        let delay = throttle.delay(afterFailures: failures)
        if delay > .zero { try? await Task.sleep(for: delay) }
        return (RESPError.wrongPass, !closing)
    }

    /// `CLIENT ID | GETNAME | SETNAME name | SETINFO LIB-NAME|LIB-VER value | INFO`.
    private mutating func client(_ words: [String], raw: ArraySlice<ByteBuffer>) -> RESPValue {
        let sub = words[0].uppercased()
        switch (sub, words.count) {
        case ("ID", 1): return .integer(clientID)
        case ("GETNAME", 1): return name.map { .bulk($0) } ?? .null
        case ("SETNAME", 2):
            guard Self.isValidName(words[1]) else { return Self.invalidNameError }
            name = words[1].isEmpty ? nil : words[1]
            return .ok
        case ("SETINFO", 3):
            let attribute = words[1].uppercased()
            guard attribute == "LIB-NAME" || attribute == "LIB-VER" else {
                return .error("ERR Unrecognized option '\(words[1].prefix(64))'")
            }
            guard Self.isValidName(words[2]) else {
                return .error("ERR \(attribute.lowercased()) cannot contain spaces, newlines or special characters.")
            }
            if attribute == "LIB-NAME" { library.name = words[2] } else { library.version = words[2] }
            return .ok
        case ("INFO", 1):
            return .verbatimString(format: "txt", text: Array((clientInfoLine + "\n").utf8))
        case ("ID", _), ("GETNAME", _), ("SETNAME", _), ("SETINFO", _), ("INFO", _):
            return .error("ERR wrong number of arguments for 'client|\(sub.lowercased())' command")
        default:
            return RESPError.unknownSubcommand(words[0], of: "CLIENT")
        }
    }

    var clientInfoLine: String {
        "id=\(clientID) name=\(name ?? "") db=0 resp=\(version.rawValue) readonly=\(staleReads ? 1 : 0) "
            + "lib-name=\(library.name ?? "") lib-ver=\(library.version ?? "")"
    }

    /// Client and library names: printable ASCII without spaces, as Redis requires.
    static func isValidName(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 > 32 && $0 < 127 }
    }

    static let invalidNameError = RESPValue.error("ERR Client names cannot contain spaces, newlines or special characters.")

    /// `COMMAND [COUNT | LIST | INFO name… | DOCS name…]`.
    private func command(_ words: [String]) -> RESPValue {
        guard let sub = words.first?.uppercased() else {
            return .array(RESPCommandTable.commands.map(\.infoReply))
        }
        let names = words.dropFirst().map { $0.uppercased() }
        switch sub {
        case "COUNT": return .integer(Int64(RESPCommandTable.commands.count))
        case "LIST": return .array(RESPCommandTable.names.map { .bulk($0.lowercased()) })
        case "INFO":
            if names.isEmpty { return .array(RESPCommandTable.commands.map(\.infoReply)) }
            return .array(names.map { RESPCommandTable.byName[$0]?.infoReply ?? .null })
        case "DOCS":
            let selected = names.isEmpty ? RESPCommandTable.commands : names.compactMap { RESPCommandTable.byName[$0] }
            return .map(selected.map { RESPMapEntry(.bulk($0.name.lowercased()), $0.docsReply) })
        default:
            return RESPError.unknownSubcommand(words[0], of: "COMMAND")
        }
    }

    /// `CONFIG GET pattern…`: a few Redis parameters with Aegis's answers, so that
    /// tools such as redis-benchmark report the right setup. CONFIG SET is refused.
    private func config(_ words: [String]) -> RESPValue {
        switch words[0].uppercased() {
        case "GET":
            guard words.count >= 2 else { return .error("ERR wrong number of arguments for 'config|get' command") }
            let patterns = words.dropFirst().map { $0.lowercased() }
            let matching = configParameters.filter { parameter in patterns.contains { globMatch($0, parameter.0) } }
            return .map(matching.map { RESPMapEntry(.bulk($0.0), .bulk($0.1)) })
        case "SET":
            // Only the keyspace notifications are set at run time (per node, as in Redis).
            guard words.count == 3, words[1].lowercased() == "notify-keyspace-events" else {
                return .error("ERR CONFIG SET supports only notify-keyspace-events; configure the node with its command-line flags and restart it")
            }
            guard let flags = KeyspaceNotificationFlags(words[2]) else {
                return .error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
            }
            server.pubsub.keyspaceNotifications = flags
            return .ok
        case "RESETSTAT":
            return .ok
        default:
            return RESPError.unknownSubcommand(words[0], of: "CONFIG")
        }
    }

    /// The parameters CONFIG GET knows. Every acknowledged write is fsynced on a
    /// quorum, which is what `appendonly yes` + `appendfsync always` mean to Redis users.
    private var configParameters: [(String, String)] {
        let configuration = server.configuration
        return [
            ("appendfsync", "always"), ("appendonly", "yes"), ("bind", configuration.host),
            ("cluster-enabled", "no"), ("databases", "1"), ("maxclients", String(configuration.limits.maxClients)), ("maxmemory", "0"),
            ("maxmemory-policy", "noeviction"), ("notify-keyspace-events", server.pubsub.keyspaceNotifications.description),
            ("port", String(configuration.port)),
            ("proto-max-bulk-len", String(configuration.limits.maxBulkLength)),
            ("protected-mode", configuration.protectedMode ? "yes" : "no"), ("save", ""), ("timeout", "0"),
        ]
    }

    /// `INFO [section…]`: server, clients, replication, cluster, keyspace.
    func info(_ requested: [String]) async -> RESPValue {
        let all = ["server", "clients", "replication", "cluster", "keyspace"]
        let wantsAll = requested.isEmpty || requested.contains { ["all", "default", "everything"].contains($0) }
        let sections = wantsAll ? all : all.filter(requested.contains)
        var lines: [String] = []
        for section in sections {
            if !lines.isEmpty { lines.append("") }
            switch section {
            case "server":
                let uptime = Int64((ContinuousClock.now - server.startTime).components.seconds)
                lines += ["# Server", "redis_version:\(AegisVersion.redisCompatibility)", "aegis_version:\(AegisVersion.current)",
                          "redis_mode:standalone", "process_id:\(ProcessInfo.processInfo.processIdentifier)",
                          "tcp_port:\(server.configuration.port)", "uptime_in_seconds:\(uptime)",
                          "uptime_in_days:\(uptime / 86_400)"]
            case "clients":
                lines += ["# Clients", "connected_clients:\(server.connectedClients.withLockedValue { $0 })"]
            case "replication":
                lines += ["# Replication"] + replicationLines(await server.backend.status())
            case "cluster":
                lines += ["# Cluster"] + clusterLines(await server.backend.status())
            default:
                lines += ["# Keyspace"]
                if let keys = try? await server.backend.count(stale: true), keys > 0 {
                    lines.append("db0:keys=\(keys),expires=0,avg_ttl=0")
                }
            }
        }
        let text = Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
        return version == .resp3 ? .verbatimString(format: "txt", text: text) : .bulkString(text)
    }

    private func replicationLines(_ status: BackendStatus) -> [String] {
        var lines = ["role:\(status.role == .leader ? "master" : "slave")",
                     "aegis_role:\(status.role.rawValue)", "node_id:\(status.nodeID)"]
        if let cluster = status.clusterID { lines.append("cluster_id:\(cluster)") }
        lines.append("leader_id:\(status.leader?.id.rawValue ?? "")")
        lines.append("leader_address:\(status.leader?.clientAddress ?? "")")
        if status.role != .leader, let address = status.leader?.clientAddress, let colon = address.lastIndex(of: ":") {
            lines.append("master_host:\(address[..<colon])")
            lines.append("master_port:\(address[address.index(after: colon)...])")
            lines.append("master_link_status:up")
        }
        if status.role != .leader && status.leader == nil { lines.append("master_link_status:down") }
        lines += ["term:\(status.term)", "commit_index:\(status.commitIndex)", "applied_index:\(status.appliedIndex)",
                  "apply_lag:\(status.applyLag)", "read_mode:\(status.readMode.rawValue)"]
        if status.role == .leader { lines.append("connected_slaves:\(max(0, status.members.count - 1))") }
        lines.append("members:\(status.members.count)")
        for (index, member) in status.members.enumerated() {
            var fields = ["id=\(member.id)", "role=\(member.role.rawValue)", "address=\(member.clientAddress)"]
            if let match = member.matchIndex { fields.append("match=\(match)") }
            if let lag = member.lag { fields.append("lag=\(lag)") }
            lines.append("member\(index):" + fields.joined(separator: ","))
        }
        return lines
    }

    /// The seed's cluster view as this node's failure detector sees it: the
    /// `ClusterState`, the `ClusterStats`, and every member's `NodeStatus`, match, lag and
    /// time since last heard (`cluster_member0:id=node1,status=healthy,…`).
    private func clusterLines(_ status: BackendStatus) -> [String] {
        guard let stats = status.cluster else { return ["cluster_view:none"] }
        var lines = ["cluster_state:\(stats.state.rawValue)", "cluster_known_nodes:\(stats.totalNodes)",
                     "cluster_healthy_nodes:\(stats.healthyNodes)", "cluster_suspect_nodes:\(stats.suspectNodes)",
                     "cluster_down_nodes:\(stats.downNodes)", "cluster_voting_nodes:\(stats.votingNodes)",
                     "cluster_quorum_size:\(stats.quorumSize)", "cluster_has_quorum:\(stats.hasQuorum ? 1 : 0)",
                     "cluster_leader:\(stats.leader?.rawValue ?? "")", "cluster_term:\(stats.term)"]
        for (index, member) in status.members.enumerated() {
            var fields = ["id=\(member.id)", "status=\(member.health?.rawValue ?? "unknown")", "role=\(member.role.rawValue)"]
            if let match = member.matchIndex { fields.append("match=\(match)") }
            if let lag = member.lag { fields.append("lag=\(lag)") }
            if let heard = member.lastHeard { fields.append("last_heard_ms=\(ClusterStatusDocument.milliseconds(heard))") }
            lines.append("cluster_member\(index):" + fields.joined(separator: ","))
        }
        return lines
    }
}

/// Compares in time that depends only on the lengths.
func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
