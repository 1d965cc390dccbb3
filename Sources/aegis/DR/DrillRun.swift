import AegisBackup
import AegisOperations
import AegisServer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One DR drill: the copy of a standby member, its start as an isolated single-node
/// cluster, the promotion, the writes, and the teardown. The phases' timings go into the
/// record (`DrillRecord.phasesMillis`).
final class DrillRun: @unchecked Sendable {
    let tool: DRTool
    let scratch: String
    let port: Int
    let keys: Int
    let log: @Sendable (String) -> Void
    let startedWall = DRCoordinator.wallMillis()
    let started = ContinuousClock.now

    private let lock = NSLock()
    private var process: Process?
    private var phases: [String: UInt64] = [:]
    private var primaryCluster: String?
    private var standbyCluster: String?
    private var createdScratch = false
    private var token = ""

    init(tool: DRTool, scratch: String, port: Int, keys: Int, log: @escaping @Sendable (String) -> Void) {
        self.tool = tool
        self.scratch = scratch
        self.port = port
        self.keys = keys
        self.log = log
    }

    private struct DrillFailure: Error, CustomStringConvertible { var description: String }

    /// Creates the scratch folder (it must not exist or be empty) and the copy's admin token.
    func prepareScratch() throws {
        let files = FileManager.default
        if let contents = try? files.contentsOfDirectory(atPath: scratch) {
            guard contents.isEmpty else { throw DrillFailure(description: "the scratch folder \(scratch) is not empty") }
        } else {
            try files.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            lock.withLock { createdScratch = true }
        }
        let token = (0 ..< 4).map { _ in String(UInt64.random(in: 0 ... .max), radix: 16) }.joined()
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: scratch + "/admin-token"))
        chmod(scratch + "/admin-token", 0o600)
        lock.withLock { self.token = token }
    }

    /// Runs the drill; the record of a drill that worked (a failure throws).
    func measure(standby: String, primary: String?, dataDirectory: String) async throws -> DrillRecord {
        // 1. What the standby and the primary hold now.
        let standbyDoc = try await phase("sample") { try await self.tool.document(standby) }
        lock.withLock { standbyCluster = standbyDoc.clusterID }
        guard standbyDoc.role == "standby" else {
            throw DrillFailure(description: "\(standbyDoc.clusterID) is \(standbyDoc.role), not a standby: nothing to drill")
        }
        // 2. The copy: the member's committed history (read live), its state at the commit
        // index written as the data directory of a new single-voter cluster.
        let history = try await phase("read") { try CommittedHistory.read(dataDirectory: dataDirectory) }
        let copiedAt = DRCoordinator.wallMillis()
        // The primary's commit index right after the read: what the copy may lack (an
        // upper bound: the read takes a moment).
        var primaryCommit: UInt64?
        if let primary {
            let doc = try await tool.document(primary)
            primaryCommit = doc.commitIndex
            lock.withLock { primaryCluster = doc.clusterID }
        } else {
            primaryCommit = standbyDoc.link?.sourceCommit
            lock.withLock { primaryCluster = standbyDoc.link?.source }
        }
        let restored = try await phase("copy") {
            try history.writeCopy(options: RestoreOptions(dataDirectory: self.scratch + "/data", nodeID: "drill",
                                                          clusterID: "drill"))
        }
        log("copied \(dataDirectory): index \(restored.position.index) (\(restored.entriesToReplay) entries after its snapshot)")
        // 3. The copy runs on other ports, isolated from both clusters.
        try await phase("start") {
            try await self.checkPortsFree()
            try await self.startCopy(clusterID: restored.clusterID)
        }
        let copyDoc = try await phase("ready") { try await self.waitForLeader() }
        log("the copy leads on 127.0.0.1:\(port) (admin \(port + 2)), role \(copyDoc.role)")
        // 4. Promote (a standby's copy is a standby), then the first write.
        if copyDoc.role != "primary" {
            try await phase("promote") { try await self.promoteCopy() }
        }
        try await phase("first-write") { try await self.firstWrite() }
        let rto = elapsedSeconds()
        let keyCount = try await phase("verify") { try await self.writeAndRead() }
        // RPO: the copy's cursor against the primary's commit sampled at the copy.
        let source = lock.withLock { primaryCluster }
        let cursor = copyDoc.cursors.first { $0.source == source } ?? copyDoc.cursors.max { $0.epoch < $1.epoch }
        let applied = cursor?.lastIndex ?? 0
        let behind = primaryCommit.map { $0 > applied ? $0 - applied : 0 }
        let rpoSeconds = behind == 0 ? 0 : cursor.map { copiedAt > $0.lastChangeMillis ? Double(copiedAt - $0.lastChangeMillis) / 1000 : 0 }
        return DrillRecord(startedAt: startedWall, finishedAt: DRCoordinator.wallMillis(), ok: true,
                           standbyCluster: standbyDoc.clusterID, primaryCluster: source, rtoSeconds: rto,
                           rpoEntries: behind, rpoSeconds: rpoSeconds, keys: keyCount,
                           phasesMillis: lock.withLock { phases })
    }

    /// Every phase's time so far, in milliseconds (the teardown's included once it ran).
    var phaseTimes: [String: UInt64] { lock.withLock { phases } }

    /// The record of a failed drill.
    func failure(_ why: String, standby: String) -> DrillRecord {
        let (source, standbyID, phases) = lock.withLock { (primaryCluster, standbyCluster, self.phases) }
        var error = why
        while error.utf8.count > DrillRecord.maxErrorBytes { error.removeLast() }
        var cluster = standbyID ?? standby
        while cluster.utf8.count > DrillRecord.maxClusterBytes { cluster.removeLast() }
        return DrillRecord(startedAt: startedWall, finishedAt: max(startedWall, DRCoordinator.wallMillis()), ok: false,
                           error: error.isEmpty ? "failed" : error, standbyCluster: cluster.isEmpty ? "unknown" : cluster,
                           primaryCluster: source, phasesMillis: phases)
    }

    /// Stops the copy (SIGTERM, then SIGKILL after 10 s) and removes the scratch folder.
    func teardown(keepScratch: Bool) async {
        let began = ContinuousClock.now
        if let process = lock.withLock({ process }), process.isRunning {
            process.terminate()
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        if keepScratch {
            log("kept \(scratch)")
        } else if lock.withLock({ createdScratch }) {
            try? FileManager.default.removeItem(atPath: scratch)
        } else {
            for name in ["data", "copy.log", "admin-token"] { try? FileManager.default.removeItem(atPath: scratch + "/" + name) }
        }
        record("teardown", ContinuousClock.now - began)
    }

    // MARK: Steps

    private func startCopy(clusterID: String) async throws {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        let host = "127.0.0.1"
        process.arguments = [
            "serve", "--id", "drill", "--data-dir", scratch + "/data", "--cluster-id", clusterID,
            "--client-listen", "\(host):\(port)", "--peer-listen", "\(host):\(port + 1)", "--admin-listen", "\(host):\(port + 2)",
            "--peers", "drill=\(host):\(port + 1)/\(host):\(port)", "--election-ticks", "20",
            "--admin-token-file", scratch + "/admin-token", "--dr-drill-copy",
        ]
        // The copy is configured by its flags only: no AEGIS_* setting of this shell
        // (a --standby-of, a backup repository) may reach it.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AEGIS_") }
        FileManager.default.createFile(atPath: scratch + "/copy.log", contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/copy.log"))
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? output.close()
        lock.withLock { self.process = process }
    }

    private func copyAdmin(_ method: String, _ path: String) async throws -> AdminHTTPClient.Response {
        let token = lock.withLock { self.token }
        return try await AdminHTTPClient.send(method: method, host: "127.0.0.1", port: port + 2, path: path,
                                              headers: [("Authorization", "Bearer \(token)")], body: nil, tls: nil,
                                              timeout: .seconds(10))
    }

    /// Refuses to start the copy on ports something already answers on.
    func checkPortsFree() async throws {
        for candidate in port ... port + 2 {
            let answered = try? await withTimeout(.seconds(2)) {
                try await RESPConnection.with("127.0.0.1:\(candidate)", password: nil) { _ in true }
            }
            if answered == true { throw DrillFailure(description: "port \(candidate) is in use: choose other --port") }
        }
    }

    private func waitForLeader() async throws -> DRDocument {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let process = lock.withLock({ process }), !process.isRunning {
                let tail = (try? String(contentsOfFile: scratch + "/copy.log", encoding: .utf8))?.suffix(400) ?? ""
                throw DrillFailure(description: "the copy exited with status \(process.terminationStatus): \(tail)")
            }
            if let response = try? await copyAdmin("GET", "/v1/dr"), response.status == 200,
               let doc = try? JSONDecoder().decode(DRDocument.self, from: response.body), doc.isLeader {
                return doc
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DrillFailure(description: "the copy did not lead within 60 s; see \(scratch)/copy.log (--keep)")
    }

    private func promoteCopy() async throws {
        var last = ""
        for _ in 0 ..< 500 {
            let response = try await copyAdmin("POST", "/v1/dr/promote?force=1")
            if response.status == 200 { return }
            last = String(decoding: response.body.prefix(300), as: UTF8.self)
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DrillFailure(description: "the copy was not promoted: \(last)")
    }

    private func firstWrite() async throws {
        var last = ""
        let deadline = ContinuousClock.now + .seconds(30)
        let (port, stamp) = (self.port, startedWall)
        while ContinuousClock.now < deadline {
            do {
                let reply = try await withTimeout(.seconds(2)) {
                    try await RESPConnection.with("127.0.0.1:\(port)", password: nil) {
                        try await $0.call(["SET", "aegis:drill:rto", "\(stamp)"])
                    }
                }
                if case .simpleString("OK") = reply { return }
                last = render(reply)
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DrillFailure(description: "the copy acknowledged no write: \(last)")
    }

    /// Writes and reads back `keys` keys; the copy's key count before them (DBSIZE).
    private func writeAndRead() async throws -> UInt64 {
        let keys = self.keys, stamp = startedWall, port = self.port
        return try await withTimeout(.seconds(120)) { try await RESPConnection.with("127.0.0.1:\(port)", password: nil) { connection in
            let size = try await connection.call(["DBSIZE"])
            guard case .integer(let count) = size, count >= 1 else {
                throw DrillFailure(description: "DBSIZE answered \(render(size))")
            }
            for k in 0 ..< keys {
                let reply = try await connection.call(["SET", "aegis:drill:\(k)", "\(stamp)-\(k)"])
                guard case .simpleString("OK") = reply else { throw DrillFailure(description: "SET answered \(render(reply))") }
            }
            for k in 0 ..< keys {
                let reply = try await connection.call(["GET", "aegis:drill:\(k)"])
                guard reply.text == "\(stamp)-\(k)" else {
                    throw DrillFailure(description: "read back aegis:drill:\(k) as \(render(reply)), wrote \(stamp)-\(k)")
                }
            }
            // The first write's key is counted in DBSIZE.
            return UInt64(count - 1)
        } }
    }

    // MARK: Timing

    private func phase<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let began = ContinuousClock.now
        defer { record(name, ContinuousClock.now - began) }
        return try await body()
    }

    private func record(_ name: String, _ duration: Duration) {
        let millis = UInt64(max(0, duration.components.seconds)) * 1000 + UInt64(max(0, duration.components.attoseconds)) / 1_000_000_000_000_000
        lock.withLock { phases[name] = millis }
    }

    private func elapsedSeconds() -> Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
