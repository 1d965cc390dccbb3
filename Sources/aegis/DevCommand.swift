import AegisServer
import AegisTLS
import ArgumentParser
import Foundation
import UnixSignals

/// `aegis dev`: a local three-node cluster on loopback, one process per node.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Start a local three-node cluster on loopback (separate processes); Ctrl-C stops it.",
        discussion: """
            Data lives under --data-dir (default ./.aegis/dev): a second run continues \
            with the same data. Each node is an `aegis serve` process; its log is \
            <data-dir>/<node>.log, and <data-dir>/nodes.json lists each node's pid, \
            addresses and the exact command that starts it.

              node    RESP (redis-cli -p)   HTTP admin          peers
              node1   127.0.0.1:7001        127.0.0.1:8001      127.0.0.1:9001
              node2   127.0.0.1:7002        127.0.0.1:8002      127.0.0.1:9002
              node3   127.0.0.1:7003        127.0.0.1:8003      127.0.0.1:9003

            Security, on by default: a throw-away CA and node certificates under \
            <data-dir>/tls (TLS on RESP, the admin API and between peers; the tools and \
            redis-cli trust <data-dir>/tls/ca.pem), and an admin token in \
            <data-dir>/admin-token, which the tools read. --no-tls runs in plaintext.

            Try: redis-cli --tls --cacert .aegis/dev/tls/ca.pem -p 7001 set k v; aegis kv get k; aegis cluster status
            """)

    @Option(help: "Where the nodes keep their data.") var dataDir: String = DevDefaults.dataDirectory
    @Option(help: "Election timeout in 10 ms ticks (randomised up to twice that).") var electionTicks: Int = 15
    @Flag(help: "Plaintext on every port (no CA, no certificates).") var noTls = false
    @Option(help: "Start this many clusters (1-3) of three nodes, meshed in an active-active group: region1 on the ports above, region2 and region3 on the same ports + 100 and + 200, data under <data-dir>/regionN.")
    var regions: Int = 1

    func validate() throws {
        guard (1 ... 3).contains(regions) else { throw ValidationError("--regions must be 1, 2 or 3") }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let host = DevDefaults.host
        let ids = DevDefaults.nodeIDs
        let peers = ids.indices.map { "\(ids[$0])=\(host):\(DevDefaults.peerPorts[$0])/\(host):\(DevDefaults.respPorts[$0])" }
            .joined(separator: ",")
        var processes: [Process] = []
        var entries: [String] = []
        let fresh = !FileManager.default.fileExists(atPath: regions == 1 ? "\(root)/\(ids[0])" : "\(root)/region1/\(ids[0])")
        // A new cluster gets a random UUID; a second run finds it in each node's identity
        // file, and a node whose directory went missing then refuses to start (it is not
        // re-founded with an empty log).
        let founding = fresh ? ["--initial-cluster-state", "new", "--cluster-uuid", UUID().uuidString]
            : ["--initial-cluster-state", "existing"]
        let tokenPath = try Self.adminToken(in: root)
        let tlsDirectory = noTls ? nil : try Self.certificates(in: root, nodes: ids)
        let caPath = DevDefaults.caPath(in: root)
        if noTls {
            // The tools read this and connect in plaintext by default.
            FileManager.default.createFile(atPath: DevDefaults.plaintextMarkerPath(in: root), contents: nil)
        }
        let regionIDs = regions == 1 ? ["dev"] : (1 ... regions).map { "region\($0)" }
        /// Region `r`'s data folder and port shift.
        func place(_ r: Int) -> (directory: String, shift: Int) {
            regions == 1 ? (root, 0) : ("\(root)/\(regionIDs[r])", 100 * r)
        }
        for r in regionIDs.indices {
            let (directory, shift) = place(r)
            let regionPeers = ids.indices.map {
                "\(ids[$0])=\(host):\(DevDefaults.peerPorts[$0] + shift)/\(host):\(DevDefaults.respPorts[$0] + shift)"
            }.joined(separator: ",")
            // Every region lists every other one: a mesh.
            var activeActive: [String] = []
            if regions > 1 {
                activeActive = ["--active-active"]
                for other in regionIDs.indices where other != r {
                    let admins = ids.indices.map { "\(host):\(DevDefaults.adminPorts[$0] + place(other).shift)" }
                    activeActive += ["--aa-peer", "\(regionIDs[other])=\(admins.joined(separator: ","))"]
                }
            }
            for k in ids.indices {
                let args = ["serve", "--id", ids[k], "--data-dir", "\(directory)/\(ids[k])", "--cluster-id", regionIDs[r]]
                    + founding + [
                        "--peer-listen", "\(host):\(DevDefaults.peerPorts[k] + shift)",
                        "--client-listen", "\(host):\(DevDefaults.respPorts[k] + shift)",
                        "--admin-listen", "\(host):\(DevDefaults.adminPorts[k] + shift)",
                        "--peers", regions == 1 ? peers : regionPeers, "--election-ticks", "\(electionTicks)",
                        "--admin-token-file", tokenPath]
                    + activeActive
                    + (tlsDirectory.map { directory in
                        let files = TLSFiles(directory: directory, name: ids[k])
                        return ["--tls-ca", files.caPath, "--tls-cert", files.certificatePath, "--tls-key", files.keyPath]
                    } ?? [])
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = args
                let logPath = "\(directory)/\(ids[k]).log"
                FileManager.default.createFile(atPath: logPath, contents: nil)
                let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
                log.seekToEndOfFile()
                process.standardOutput = log
                process.standardError = log
                try process.run()
                processes.append(process)
                let command = ([executable] + args).map { "\"\($0)\"" }.joined(separator: ", ")
                entries.append(#"{"id":"\#(ids[k])","cluster":"\#(regionIDs[r])","pid":\#(process.processIdentifier),"resp":"\#(host):\#(DevDefaults.respPorts[k] + shift)","admin":"\#(host):\#(DevDefaults.adminPorts[k] + shift)","peer":"\#(host):\#(DevDefaults.peerPorts[k] + shift)","log":"\#(logPath)","command":[\#(command)]}"#)
            }
        }
        try Data(#"{"nodes":[\#(entries.joined(separator: ","))]}"#.utf8).write(to: URL(fileURLWithPath: "\(root)/nodes.json"))
        say("aegis dev: \(fresh ? "new" : "existing") \(regions == 1 ? "cluster" : "active-active group of \(regions) clusters") in \(root)")
        for r in regionIDs.indices {
            let (directory, shift) = place(r)
            for k in ids.indices {
                say("  \(regions == 1 ? "" : regionIDs[r] + " ")\(ids[k])  pid \(processes[r * ids.count + k].processIdentifier)  RESP \(host):\(DevDefaults.respPorts[k] + shift)  HTTP \(noTls ? "http" : "https")://\(host):\(DevDefaults.adminPorts[k] + shift)  log \(directory)/\(ids[k]).log")
            }
        }
        if regions > 1 { say("  links: aegis aa status --admin \(host):\(DevDefaults.adminPorts[0])") }
        say("  admin token: \(tokenPath) (curl -H \"Authorization: Bearer $(cat \(tokenPath))\"\(noTls ? "" : " --cacert \(caPath)") \(noTls ? "http" : "https")://\(host):\(DevDefaults.adminPorts[0])/v1/cluster)")
        if !noTls { say("  TLS on every port; CA certificate: \(caPath)") }
        let stop = StopSignal()
        let signals = Task {
            for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                stop.fire()
                break
            }
        }
        if let leader = await waitForLeader(stop: stop, ca: tlsDirectory == nil ? nil : caPath) {
            say("  leader: \(leader)")
            let cli = noTls ? "redis-cli" : "redis-cli --tls --cacert \(caPath)"
            say("ready: \(cli) -p \(DevDefaults.respPorts[0]) set k v; \(cli) -p \(DevDefaults.respPorts[1]) get k   (Ctrl-C stops)")
        } else if !stop.fired {
            say("no leader yet after 30 s; see the logs in \(root)")
        }
        var reported = Set<Int>()
        while !stop.fired {
            try? await Task.sleep(for: .milliseconds(100))
            for (k, p) in processes.enumerated() where !p.isRunning && !stop.fired && p.processIdentifier != 0 {
                if !reported.contains(k) {
                    let r = k / ids.count
                    say("\(regionIDs[r]) \(ids[k % ids.count]) exited with status \(p.terminationStatus); see \(place(r).directory)/\(ids[k % ids.count]).log")
                    reported.insert(k)
                }
            }
        }
        say("stopping...")
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
        signals.cancel()
        say("stopped; data kept in \(root)")
    }

    /// Polls each node's RESP port with INFO replication until one reports a leader.
    private func waitForLeader(stop: StopSignal, ca: String?) async -> String? {
        var tls = ToolTLSOptions()
        tls.tlsCA = ca
        tls.noTLS = ca == nil
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline && !stop.fired {
            for port in DevDefaults.respPorts {
                let reply = try? await RESPConnection.with("\(DevDefaults.host):\(port)", password: nil, tls: try tls.clientContext()) {
                    try await $0.call(["INFO", "replication"])
                }
                for line in (reply?.text ?? "").split(whereSeparator: \.isNewline) where line.hasPrefix("leader_id:") {
                    let leader = line.dropFirst("leader_id:".count)
                    if !leader.isEmpty && leader != "none" { return String(leader) }
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// The dev cluster's admin token file, created with a random token (mode 0600)
    /// on the first run. Returns its path.
    static func adminToken(in root: String) throws -> String {
        let path = DevDefaults.adminTokenPath(in: root)
        if FileManager.default.fileExists(atPath: path) { return path }
        var generator = SystemRandomNumberGenerator()
        let token = (0 ..< 4).map { _ in String(generator.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw ToolError("cannot write the admin token file \(path)")
        }
        return path
    }

    /// The dev cluster's CA (created on the first TLS run, kept after) and a fresh
    /// certificate per node for 127.0.0.1 and localhost. Returns the folder.
    static func certificates(in root: String, nodes: [String]) throws -> String {
        let directory = "\(root)/\(DevDefaults.tlsDirectoryName)"
        do {
            let ca = FileManager.default.fileExists(atPath: DevDefaults.caPath(in: root))
                ? try CertificateAuthority.load(from: directory)
                : try CertificateAuthority.create(commonName: "Aegis dev CA (throw-away)")
            try ca.write(to: directory, overwrite: true)
            for node in nodes {
                try ca.issue(nodeID: node, hosts: [DevDefaults.host, "localhost"]).write(to: directory, overwrite: true)
            }
        } catch {
            throw ToolError("cannot create the dev certificates in \(directory): \(error.message); delete the folder to start over")
        }
        try? FileManager.default.removeItem(atPath: DevDefaults.plaintextMarkerPath(in: root))
        return directory
    }
}

extension String {
    /// The string with leading zeros up to `width` characters.
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var fired: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
    func fire() {
        lock.lock()
        value = true
        lock.unlock()
    }
}


/// Writes a line to standard output at once (no buffering, also into pipes).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
