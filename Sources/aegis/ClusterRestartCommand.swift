import AegisOperations
import AegisServer
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `aegis cluster restart-rolling`: restarts every node once, one at a time, each only
/// when the others are caught up; the leader last (it hands leadership over as it stops).
struct ClusterRestartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart-rolling",
        abstract: "Restart every node one at a time, followers first and the leader last, each when the others caught up.",
        discussion: """
        For each node: wait until the leader's view (GET /v1/cluster) shows every member healthy and at most \
        --max-lag entries behind; stop it gracefully (POST /v1/node/shutdown: a leader hands leadership to the \
        most caught-up voter first, then the node answers what it already read and exits); bring it back; wait \
        until its /readyz passes and the others caught up again. One log line per event with its timing.

        How a node comes back, by the nodes given:
          --nodes-file FILE (default: the nodes.json of `aegis dev` under --dev-root): this command starts each \
        node's recorded command itself, its output appended to the node's log, and writes the new pid back.
          --admin id=host:port,… --restart-command 'CMD': runs CMD ({id}, {host}, {admin} replaced) instead of the \
        admin stop, e.g. 'ssh {host} sudo systemctl restart aegis'.
          --admin id=host:port,… alone: the admin stop only; a supervisor (systemd Restart=always, Kubernetes) \
        restarts the node.

          aegis cluster restart-rolling
          aegis cluster restart-rolling --admin n1=10.0.0.1:8001,n2=10.0.0.2:8001,n3=10.0.0.3:8001
        """)
    @Option(help: ArgumentHelp("Every node's admin address, as id=host:port,…", valueName: "id=host:port,…"))
    var admin: String?
    @Option(help: ArgumentHelp("A nodes file (aegis dev's nodes.json format).", valueName: "path")) var nodesFile: String?
    @Option(help: "The `aegis dev` data folder (its nodes.json, when neither --admin nor --nodes-file is given).")
    var devRoot: String = DevDefaults.dataDirectory
    @Option(help: "A shell command that restarts one node ({id}, {host}, {admin}).") var restartCommand: String?
    @Option(help: "Most entries any member may be behind the leader before a node is stopped.") var maxLag: UInt64 = 0
    @Option(help: "Seconds each wait (caught up, stopped, ready) may take.") var timeout: Int = 60
    @Flag(help: "Print the result as JSON at the end (the log lines go to standard error).") var json = false
    @OptionGroup var security: ToolSecurityOptions

    func validate() throws {
        guard (1 ... 3600).contains(timeout) else { throw ValidationError("--timeout must be 1 to 3600 seconds") }
        if restartCommand != nil && admin == nil { throw ValidationError("--restart-command needs --admin") }
    }

    func run() async throws {
        var security = self.security
        let (nodes, path) = try loadNodes()
        if path != nil && security.adminToken == nil && ProcessInfo.processInfo.environment["AEGIS_ADMIN_TOKEN"] == nil {
            // aegis dev's token beside its nodes.json.
            security.adminToken = (try? String(contentsOfFile: DevDefaults.adminTokenPath(in: devRoot), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var restarter = RollingRestarter(nodes: nodes, nodesFile: path, restartCommand: restartCommand, maxLag: maxLag,
                                         timeout: .seconds(timeout), tool: DRTool(security: security), toStandardError: json)
        let steps = await restarter.run()
        if json { try printJSON(steps) }
        guard steps.count == nodes.nodes.count, steps.allSatisfy(\.ok) else { throw ExitCode(1) }
    }

    private func loadNodes() throws -> (RollingRestartNodes, String?) {
        if let admin {
            var nodes: [RollingRestartNodes.Node] = []
            for item in admin.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, (try? parseAddress(parts[1])) != nil else {
                    throw ValidationError("--admin: '\(item)' is not id=host:port")
                }
                nodes.append(.init(id: parts[0], admin: parts[1]))
            }
            return (try decodeChecked(nodes), nil)
        }
        let path = nodesFile ?? devRoot + "/nodes.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolError("cannot read \(path): give --nodes-file, or --admin id=host:port,… (is `aegis dev` running?)")
        }
        do { return (try RollingRestartNodes.decode(data), path) } catch { throw ToolError("\(path): \(error.description)") }
    }

    private func decodeChecked(_ nodes: [RollingRestartNodes.Node]) throws -> RollingRestartNodes {
        do {
            return try RollingRestartNodes.decode(try JSONEncoder().encode(RollingRestartNodes(nodes: nodes)))
        } catch let error as RunbookError {
            throw ValidationError("--admin: \(error.description)")
        }
    }
}

/// One node's restart (`--json`).
struct RollingRestartStep: Codable, Sendable {
    var node: String
    var ok = false
    var wasLeader = false
    var waitedForCatchUpSeconds: Double?
    var stopSeconds: Double?
    var readyAfterSeconds: Double?
    var caughtUpAfterSeconds: Double?
    var pid: Int32?
    var error: String?
}

/// Carries out a rolling restart.
struct RollingRestarter {
    var nodes: RollingRestartNodes
    let nodesFile: String?
    let restartCommand: String?
    let maxLag: UInt64
    let timeout: Duration
    let tool: DRTool
    let toStandardError: Bool

    private struct Failure: Error, CustomStringConvertible { var description: String }

    func log(_ line: String) {
        let data = Data((line + "\n").utf8)
        (toStandardError ? FileHandle.standardError : FileHandle.standardOutput).write(data)
    }

    mutating func run() async -> [RollingRestartStep] {
        let ids = nodes.nodes.map(\.id)
        let leader = try? await leaderView()
        let order = RollingRestart.order(ids, leader: leader?.nodeID)
        log("rolling restart of \(ids.count) nodes: \(order.joined(separator: ", ")) (leader \(leader?.nodeID ?? "unknown") last)")
        var steps: [RollingRestartStep] = []
        let began = ContinuousClock.now
        for (position, id) in order.enumerated() {
            var step = RollingRestartStep(node: id)
            do {
                try await restart(id, position: position + 1, of: order.count, step: &step)
                step.ok = true
            } catch {
                step.error = "\(error)"
                log("[\(position + 1)/\(order.count)] \(id): FAILED: \(error); the other nodes are not restarted")
            }
            steps.append(step)
            if !step.ok { break }
        }
        if steps.count == order.count && steps.allSatisfy(\.ok) {
            log("rolling restart done: \(order.count) nodes in \(seconds(ContinuousClock.now - began)) s")
        }
        return steps
    }

    private mutating func restart(_ id: String, position: Int, of total: Int, step: inout RollingRestartStep) async throws {
        guard let index = nodes.nodes.firstIndex(where: { $0.id == id }) else { return }
        let node = nodes.nodes[index]
        let tag = "[\(position)/\(total)] \(id)"
        var mark = ContinuousClock.now
        let view = try await waitCaughtUp()
        step.waitedForCatchUpSeconds = seconds(ContinuousClock.now - mark)
        step.wasLeader = view.nodeID == id
        log("\(tag): the others caught up (\(step.waitedForCatchUpSeconds ?? 0) s); stopping\(step.wasLeader ? " the leader (it hands over)" : "")")
        mark = ContinuousClock.now
        if let restartCommand {
            let (host, _) = try parseAddress(node.admin)
            let command = restartCommand.replacingOccurrences(of: "{id}", with: id).replacingOccurrences(of: "{host}", with: host)
                .replacingOccurrences(of: "{admin}", with: node.admin)
            let status = try await ShellHook.run(command, environment: ProcessInfo.processInfo.environment, timeout: timeout)
            guard status == 0 else { throw Failure(description: "`\(command)` exited with status \(status)") }
            step.stopSeconds = seconds(ContinuousClock.now - mark)
            log("\(tag): `\(command)` done in \(step.stopSeconds ?? 0) s")
        } else {
            _ = try await admin(node, "POST", "/v1/node/shutdown", expect: 202)
            try await waitUntil("\(id) exits") { await !isRunning(node) }
            step.stopSeconds = seconds(ContinuousClock.now - mark)
            if let command = node.command {
                let pid = try start(command, log: node.log)
                nodes.nodes[index].pid = pid
                step.pid = pid
                savePid(pid, of: id)
                log("\(tag): stopped in \(step.stopSeconds ?? 0) s; started again, pid \(pid)")
            } else {
                log("\(tag): stopped in \(step.stopSeconds ?? 0) s; waiting for its supervisor to start it")
            }
        }
        mark = ContinuousClock.now
        try await waitUntil("\(id) ready (/readyz)") { (try? await admin(node, "GET", "/readyz", expect: 200)) != nil }
        step.readyAfterSeconds = seconds(ContinuousClock.now - mark)
        log("\(tag): ready in \(step.readyAfterSeconds ?? 0) s")
        mark = ContinuousClock.now
        _ = try await waitCaughtUp()
        step.caughtUpAfterSeconds = seconds(ContinuousClock.now - mark)
        log("\(tag): done; every member caught up again in \(step.caughtUpAfterSeconds ?? 0) s")
    }

    // MARK: Helpers

    /// The leader's own view of the cluster, asked of the leader.
    private func leaderView() async throws -> ClusterStatusDocument {
        var failures: [String] = []
        for node in nodes.nodes {
            guard let data = try? await admin(node, "GET", "/v1/cluster", expect: 200),
                  let view = try? JSONDecoder().decode(ClusterStatusDocument.self, from: data) else {
                failures.append("\(node.id) did not answer")
                continue
            }
            if view.role == "leader" { return view }
            if let leader = nodes.nodes.first(where: { $0.id == view.leader }),
               let data = try? await admin(leader, "GET", "/v1/cluster", expect: 200),
               let leaderView = try? JSONDecoder().decode(ClusterStatusDocument.self, from: data), leaderView.role == "leader" {
                return leaderView
            }
            failures.append("\(node.id) knows no answering leader")
        }
        throw Failure(description: "no leader: \(failures.joined(separator: "; "))")
    }

    private func waitCaughtUp() async throws -> ClusterStatusDocument {
        let deadline = ContinuousClock.now + timeout
        var why = ""
        while true {
            do {
                let view = try await leaderView()
                guard let reason = RollingRestart.notCaughtUp(view, maxLag: maxLag) else { return view }
                why = reason
            } catch {
                why = "\(error)"
            }
            guard ContinuousClock.now < deadline else {
                throw Failure(description: "the members did not catch up within \(seconds(timeout)) s: \(why)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private func waitUntil(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw Failure(description: "not \(what) within \(seconds(timeout)) s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The body of a request that answered `expect`.
    private func admin(_ node: RollingRestartNodes.Node, _ method: String, _ path: String, expect: Int) async throws -> Data {
        let (host, port) = try parseAddress(node.admin)
        let token = tool.security.resolvedAdminToken
        let response = try await AdminHTTPClient.send(
            method: method, host: host, port: port, path: path, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [],
            body: nil, tls: try tool.security.clientContext(), timeout: .seconds(5))
        guard response.status == expect else {
            throw Failure(description: "\(method) \(path) on \(node.id): HTTP \(response.status) \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
        return response.body
    }

    /// Whether the node still runs: its process (if its pid is known: alive and not a
    /// zombie) or else its admin port answering.
    private func isRunning(_ node: RollingRestartNodes.Node) async -> Bool {
        if let pid = node.pid, pid > 0 {
            guard kill(pid, 0) == 0 else { return false }
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            // The state follows the command name in parentheses: "Z" is a zombie (exited).
            if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") {
                return false
            }
            return true
        }
        guard let (host, port) = try? parseAddress(node.admin) else { return false }
        return (try? await AdminHTTPClient.send(method: "GET", host: host, port: port, path: "/livez", headers: [], body: nil,
                                                tls: try? tool.security.clientContext(), timeout: .seconds(2))) != nil
    }

    /// Starts a node's command, detached, its output appended to `log`; its pid.
    private func start(_ command: [String], log path: String?) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        if let path {
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process.processIdentifier
    }

    /// Writes a node's new pid back to the nodes file, keeping every other field.
    private func savePid(_ pid: Int32, of id: String) {
        guard let nodesFile, let data = FileManager.default.contents(atPath: nodesFile),
              var document = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              var list = document["nodes"] as? [[String: Any]],
              let index = list.firstIndex(where: { $0["id"] as? String == id }) else { return }
        list[index]["pid"] = Int(pid)
        document["nodes"] = list
        if let updated = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]) {
            try? updated.write(to: URL(fileURLWithPath: nodesFile), options: .atomic)
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        ((Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18) * 1000).rounded() / 1000
    }
}
