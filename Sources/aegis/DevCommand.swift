import AegisServer
import ArgumentParser
import Foundation
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

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

            Try: redis-cli -p 7001 set k v; redis-cli -p 7002 get k; aegis cluster status
            """)

    @Option(help: "Where the nodes keep their data.") var dataDir: String = DevDefaults.dataDirectory
    @Option(help: "Election timeout in 10 ms ticks (randomised up to twice that).") var electionTicks: Int = 15

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
        let fresh = !FileManager.default.fileExists(atPath: "\(root)/\(ids[0])")
        // A new cluster gets a random UUID; a second run finds it in each node's identity
        // file, and a node whose directory went missing then refuses to start (it is not
        // re-founded with an empty log).
        let founding = fresh ? ["--initial-cluster-state", "new", "--cluster-uuid", UUID().uuidString]
            : ["--initial-cluster-state", "existing"]
        for k in ids.indices {
            let args = ["serve", "--id", ids[k], "--data-dir", "\(root)/\(ids[k])", "--cluster-id", "dev"] + founding + [
                        "--peer-listen", "\(host):\(DevDefaults.peerPorts[k])",
                        "--client-listen", "\(host):\(DevDefaults.respPorts[k])",
                        "--admin-listen", "\(host):\(DevDefaults.adminPorts[k])",
                        "--peers", peers, "--election-ticks", "\(electionTicks)"]
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = args
            let logPath = "\(root)/\(ids[k]).log"
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            log.seekToEndOfFile()
            process.standardOutput = log
            process.standardError = log
            try process.run()
            processes.append(process)
            let command = ([executable] + args).map { "\"\($0)\"" }.joined(separator: ", ")
            entries.append(#"{"id":"\#(ids[k])","pid":\#(process.processIdentifier),"resp":"\#(host):\#(DevDefaults.respPorts[k])","admin":"\#(host):\#(DevDefaults.adminPorts[k])","peer":"\#(host):\#(DevDefaults.peerPorts[k])","log":"\#(logPath)","command":[\#(command)]}"#)
        }
        try Data(#"{"nodes":[\#(entries.joined(separator: ","))]}"#.utf8).write(to: URL(fileURLWithPath: "\(root)/nodes.json"))
        say("aegis dev: \(fresh ? "new" : "existing") cluster in \(root)")
        for k in ids.indices {
            say("  \(ids[k])  pid \(processes[k].processIdentifier)  RESP \(host):\(DevDefaults.respPorts[k])  HTTP http://\(host):\(DevDefaults.adminPorts[k])  log \(root)/\(ids[k]).log")
        }
        let stop = StopSignal()
        let signals = Task {
            for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                stop.fire()
                break
            }
        }
        if let leader = await waitForLeader(stop: stop) {
            say("  leader: \(leader)")
            say("ready: redis-cli -p \(DevDefaults.respPorts[0]) set k v; redis-cli -p \(DevDefaults.respPorts[1]) get k   (Ctrl-C stops)")
        } else if !stop.fired {
            say("no leader yet after 30 s; see the logs in \(root)")
        }
        var reported = Set<Int>()
        while !stop.fired {
            try? await Task.sleep(for: .milliseconds(100))
            for (k, p) in processes.enumerated() where !p.isRunning && !stop.fired && p.processIdentifier != 0 {
                if !reported.contains(k) {
                    say("\(ids[k]) exited with status \(p.terminationStatus); see \(root)/\(ids[k]).log")
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
    private func waitForLeader(stop: StopSignal) async -> String? {
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while ContinuousClock.now < deadline && !stop.fired {
            for port in DevDefaults.respPorts {
                if let info = RESPProbe.infoReplication(host: DevDefaults.host, port: port),
                   let leader = info["leader_id"], !leader.isEmpty, leader != "none" {
                    return leader
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }
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


/// A minimal blocking RESP probe: `INFO replication` over a plain socket, used by
/// `aegis dev` to wait for a leader before printing it.
enum RESPProbe {
    static func infoReplication(host: String, port: Int) -> [String: String]? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return nil }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !isCompleteBulkString(data) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        guard data.first == UInt8(ascii: "$"), let text = String(bytes: data, encoding: .utf8) else { return nil }
        var result: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }

    /// `$<length>\r\n<payload>\r\n` fully received (or an error reply).
    static func isCompleteBulkString(_ data: [UInt8]) -> Bool {
        guard let first = data.first else { return false }
        if first != UInt8(ascii: "$") { return data.last == UInt8(ascii: "\n") }
        guard let cr = data.firstIndex(of: UInt8(ascii: "\r")),
              let length = Int(String(decoding: data[1..<cr], as: UTF8.self)) else { return false }
        return data.count >= cr + 2 + max(length, 0) + 2
    }
}

/// Writes a line to standard output at once (no buffering, also into pipes).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
