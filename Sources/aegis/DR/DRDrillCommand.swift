import AegisBackup
import AegisOperations
import AegisServer
import ArgumentParser
import Foundation

/// `aegis dr drill`: measures RTO and RPO on a throw-away copy of the standby, without
/// touching the primary or the standby's role.
struct DRDrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "DR drill: promote a throw-away copy of the standby on other ports; measure RTO and RPO.",
        discussion: """
        1. checks --standby is a standby; 2. reads a standby member's committed history (--standby-data-dir, on \
        this machine, while the node runs, as `aegis backup create` does), samples the primary's commit index \
        (--primary), writes its state at the commit index as the data directory of a new single-node cluster \
        (a new cluster UUID, as `aegis recover` writes: the copy can never join either cluster); 3. starts it as a single-node cluster on \
        127.0.0.1:PORT (RESP), PORT+1 (peer), PORT+2 (admin), its DR side isolated (--dr-drill-copy: it never \
        contacts another cluster); 4. promotes it, writes and reads --keys keys through it; 5. stops it and \
        deletes the scratch folder. RTO: drill start to the copy's first acknowledged write. RPO: entries the \
        copy is behind the primary's commit index sampled right after the read, and an upper bound in seconds (the time \
        since the copy's newest change, if it is behind). The record is posted to every node of --standby and \
        --primary (GET /v1/dr/drills; the dr-drill health check).

          aegis dr drill --standby S1,S2,S3 --primary P1,P2,P3 --standby-data-dir /var/lib/aegis --json
        """)
    @Option(help: "The standby cluster's admin addresses.") var standby: String
    @Option(help: "The primary cluster's admin addresses (for the RPO in entries; the drill only reads from it).")
    var primary: String?
    @Option(help: ArgumentHelp("A standby member's data directory on this machine.", valueName: "path")) var standbyDataDir: String
    @Option(help: "The copy's first port: RESP on PORT, peer PORT+1, admin PORT+2 (127.0.0.1).") var port: Int = 17_101
    @Option(help: "Keys written and read back through the copy.") var keys: Int = 100
    @Option(help: ArgumentHelp("Scratch folder (default: a new one under the system's temporary folder).", valueName: "path"))
    var work: String?
    @Option(help: "Seconds the whole drill may take.") var timeout: Int = 300
    @Flag(help: "Keep the scratch folder (the copy's data and log).") var keep = false
    @Flag(help: "Do not post the record to the clusters' drill histories.") var noRecord = false
    @Flag(help: "Print the record as JSON instead of lines.") var json = false
    @OptionGroup var security: ToolSecurityOptions

    func validate() throws {
        guard (1024 ... 65_533).contains(port) else { throw ValidationError("--port must be 1024 to 65533 (three ports from it)") }
        guard (1 ... 100_000).contains(keys) else { throw ValidationError("--keys must be 1 to 100000") }
        guard (10 ... 86_400).contains(timeout) else { throw ValidationError("--timeout must be 10 to 86400 seconds") }
    }

    func run() async throws {
        let tool = DRTool(security: security)
        let scratch = work ?? (NSTemporaryDirectory() + "/aegis-drill-\(ProcessInfo.processInfo.processIdentifier)-\(port)")
        let quiet = json
        let log: @Sendable (String) -> Void = { line in if !quiet { printLine(line) } }
        let drill = DrillRun(tool: tool, scratch: scratch, port: port, keys: keys, log: log)
        var record: DrillRecord
        do {
            try await drill.prepareScratch()
            record = try await withTimeout(.seconds(timeout)) { [drill, standby, primary, standbyDataDir] in
                try await drill.measure(standby: standby, primary: primary, dataDirectory: standbyDataDir)
            }
        } catch {
            record = drill.failure("\(error)", standby: standby)
        }
        await drill.teardown(keepScratch: keep)
        record.phasesMillis = drill.phaseTimes
        if !noRecord {
            let posted = await post(record, tool: tool)
            if !json { printLine("recorded in \(posted.ok) drill histories" + (posted.failures.isEmpty ? "" : "; not in: \(posted.failures.joined(separator: "; "))")) }
        }
        if json {
            try printJSON(record)
        } else if record.ok {
            printLine(String(format: "drill passed: RTO %.3f s, RPO %llu entries (≤ %.3f s)", record.rtoSeconds ?? 0,
                             record.rpoEntries ?? 0, record.rpoSeconds ?? 0))
        } else {
            printLine("drill FAILED: \(record.error ?? "")")
        }
        if !record.ok { throw ExitCode(1) }
    }

    /// Posts the record to every node of both clusters.
    private func post(_ record: DrillRecord, tool: DRTool) async -> (ok: Int, failures: [String]) {
        let addresses = ([standby] + (primary.map { [$0] } ?? []))
            .flatMap { $0.split(separator: ",").map(String.init) }
        var ok = 0
        var failures: [String] = []
        guard let body = try? record.encoded() else { return (0, ["the record cannot be encoded"]) }
        for address in addresses {
            do {
                let (host, port) = try parseAddress(address)
                let token = security.resolvedAdminToken
                let response = try await AdminHTTPClient.send(
                    method: "POST", host: host, port: port, path: "/v1/dr/drills",
                    headers: [("Content-Type", "application/json")] + (token.map { [("Authorization", "Bearer \($0)")] } ?? []),
                    body: body, tls: try security.clientContext(), timeout: .seconds(5))
                if response.status == 200 { ok += 1 } else { failures.append("\(address): HTTP \(response.status)") }
            } catch {
                failures.append("\(address): \(error)")
            }
        }
        return (ok, failures)
    }
}
