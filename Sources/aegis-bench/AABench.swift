import AegisBackup
import AegisCRDT
import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import ArgumentParser
import Foundation
import Logging

/// `aegis-bench aa`: events per second per active-active link and the lag of each
/// event, across 2 and 3 clusters (a mesh: every cluster pulls every other).
///
/// Every cluster is a real cluster in this process (`LocalCluster`: node runtimes over
/// TCP loopback, the WAL with fdatasync). A link does what `aegis serve`'s pulling
/// leader does per step (`AACoordinator`): the source leader's active-active batch after
/// the link's cursor (`NodeRuntime.activeActiveBatch`: the committed entries read from
/// the log and the current CRDT state of every key they wrote), the frame encoded
/// (`ActiveActiveFrame`, compressed) and decoded with the receiver's limits, and the
/// batch proposed through the receiving cluster's Raft log (command 71) and applied
/// (merged) by every node there. Not included: the HTTP request per frame.
///
/// Two phases per scenario: *drain* (every cluster writes a backlog with the links
/// stopped; then the links start, and each link's events/s is its backlog over the time
/// it took to deliver it) and *load* (the links run while every cluster's clients write
/// as fast as they can; an event's lag is the time from its write being applied on the
/// source's leader to the merge that carries it being applied on the receiver's).
/// Only successful writes are events; failed writes and link errors are reported apart.
struct AABench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aa",
        abstract: "Events/s per active-active link and lag p50/p99 under load, across 2 and 3 clusters.")

    @Flag(help: "Print one JSON object per scenario.") var json = false
    @Option(help: "Comma-separated numbers of clusters (each scenario is a mesh).") var clusters = "2,3"
    @Option(help: "Nodes per cluster.") var nodes = 3
    @Option(help: "Events (distinct keys) each cluster writes before its links start (drain phase).") var backlog = 100_000
    @Option(help: "Seconds of the load phase.") var seconds = 5.0
    @Option(help: "Writes per client request (each write is one log entry).") var writeBatch = 500
    @Option(help: "Clients in flight per cluster.") var lanes = 4
    @Option(help: "Load phase: writes per second each cluster's clients offer (0: as fast as they can).") var rate = 0
    @Option(help: "Bytes per value.") var valueBytes = 100
    @Option(help: "Most source log entries per frame (StreamSettings.maxBatchEntries).") var batchEntries = StreamSettings().maxBatchEntries
    @Option(help: "Compression: none, gzip, lz4, zstd.") var compression = "lz4"
    @Option(help: "The most seconds any wait (leaders, a drain, catching up after the load) may take.") var timeout = 120.0
    @Option(help: "Directory for the nodes' data (a fresh subdirectory is used).") var dir = NSTemporaryDirectory()

    func validate() throws {
        guard nodes >= 1, nodes <= 5 else { throw ValidationError("--nodes: 1 to 5") }
        guard backlog >= 0, writeBatch >= 1, lanes >= 1, valueBytes >= 0, rate >= 0, seconds > 0, timeout > 0 else {
            throw ValidationError("--backlog, --value-bytes, --rate: 0 or more; --write-batch, --lanes, --seconds, --timeout: above 0")
        }
        guard batchEntries >= 1, batchEntries <= StreamLimits().maxBatchEntries else {
            throw ValidationError("--batch-entries: 1 to \(StreamLimits().maxBatchEntries)")
        }
        guard !scenarioCounts.isEmpty, scenarioCounts.allSatisfy({ $0 >= 2 && $0 <= 5 }) else {
            throw ValidationError("--clusters: numbers from 2 to 5, comma-separated")
        }
        guard BackupCompression(rawValue: compression) != nil else { throw ValidationError("--compression: none, gzip, lz4 or zstd") }
    }

    var scenarioCounts: [Int] { clusters.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() async throws {
        guard let codec = BackupCompression(rawValue: compression) else { return }
        try codec.checkAvailable()
        var settings = StreamSettings()
        settings.maxBatchEntries = batchEntries
        settings.compression = codec
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if !json {
            print("aegis-bench aa: clusters of \(nodes) nodes in one process (TCP loopback, WAL with fdatasync), a mesh of pull links; \(valueBytes)-byte values, writes in requests of \(writeBatch), \(lanes) clients per cluster, frames of ≤ \(batchEntries) entries, \(codec.rawValue); \(cores) cores, \(buildMode) build")
            print("load phase: \(rate > 0 ? "\(rate) writes/s offered per cluster" : "clients write as fast as they can (closed loop)")")
            print("a link step: source batch (log read + key states) → frame encode → decode → proposed through the receiver's Raft log and merged; the HTTP hop is not included")
        }
        for count in scenarioCounts {
            let root = "\(dir)/aegis-bench-aa-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: root) }
            let mesh = try await AAMesh.start(clusters: count, nodes: nodes, root: root, settings: settings, timeout: timeout)
            let report: AAReport
            do {
                report = try await scenario(mesh)
            } catch {
                await mesh.shutdown()
                throw error
            }
            await mesh.shutdown()
            print(json ? report.json : report.text)
        }
    }

    func scenario(_ mesh: AAMesh) async throws -> AAReport {
        var report = AAReport(clusters: mesh.clusters.count, nodes: nodes, valueBytes: valueBytes, compression: compression,
                              batchEntries: batchEntries, links: mesh.links.map(\.name))
        // Drain: a backlog per cluster with the links stopped, then the links.
        if backlog > 0 {
            let written = try await writeAll(mesh, phase: "d", until: .count(backlog))
            report.writeErrors += written.errors
            let start = monotonicSeconds()
            let cpuStart = processCPUSeconds()
            let targets = written.lastIndex
            let drained = try await mesh.runLinks(until: .caughtUp(targets: targets), timeout: timeout)
            report.drainCPUSeconds = processCPUSeconds() - cpuStart
            report.drainEvents = mesh.links.reduce(0) { $0 + written.perCluster[$1.source] }  // each link delivers its source's backlog
            for (k, link) in mesh.links.enumerated() {
                let events = written.perCluster[link.source]
                let took = (drained.lastMerge[k] ?? start) - start
                report.drain.append(AAReport.Figure(events: events, seconds: took))
            }
            report.linkErrors += drained.errors
            report.lastLinkError = drained.lastError ?? report.lastLinkError
        }
        // Load: the links run while every cluster writes for `seconds`.
        let loadStart = monotonicSeconds()
        async let links = mesh.runLinks(until: .writersDoneThenCaughtUp, timeout: seconds + timeout)
        let written = try await writeAll(mesh, phase: "l", until: .seconds(seconds))
        mesh.writersDone(lastIndexes: written.lastIndex)
        let result = try await links
        report.offeredRate = rate
        report.writeErrors += written.errors
        report.linkErrors += result.errors
        report.lastLinkError = result.lastError ?? report.lastLinkError
        report.writesPerSecond = written.perCluster.map { Double($0) / max(written.seconds, 1e-9) }
        for (k, link) in mesh.links.enumerated() {
            let writes = written.records[link.source].sorted { $0.index < $1.index }
            var lags: [Double] = []
            lags.reserveCapacity(writes.count)
            for merge in result.merges[k] {
                var position = lowerBound(writes, after: merge.after)
                while position < writes.count && writes[position].index <= merge.last {
                    lags.append(max(0, merge.time - writes[position].time))
                    position += 1
                }
            }
            let took = (result.lastMerge[k] ?? loadStart) - loadStart
            report.load.append(AAReport.Figure(events: lags.count, seconds: took, lags: lags.sorted()))
            report.undelivered += writes.count - lags.count
        }
        return report
    }

    /// The first write with an index above `after` (writes sorted by index).
    func lowerBound(_ writes: [AAMesh.Write], after: UInt64) -> Int {
        var low = 0
        var high = writes.count
        while low < high {
            let middle = (low + high) / 2
            if writes[middle].index <= after { low = middle + 1 } else { high = middle }
        }
        return low
    }

    enum WriteGoal { case count(Int), seconds(Double) }

    struct Written {
        var perCluster: [Int]
        var records: [[AAMesh.Write]]
        var lastIndex: [UInt64]
        var errors: Int
        var seconds: Double
    }

    /// Every cluster's clients write distinct keys (`<phase><cluster>-<lane>-<n>`).
    func writeAll(_ mesh: AAMesh, phase: String, until goal: WriteGoal) async throws -> Written {
        let value = [UInt8](repeating: 0x61, count: valueBytes)
        let start = monotonicSeconds()
        let perLane: Int
        let deadline: Double
        let laneRate: Double  // each lane's offered writes per second (0: unpaced)
        switch goal {
        case .count(let n): perLane = (n + lanes - 1) / lanes; deadline = start + timeout; laneRate = 0
        case .seconds(let s): perLane = Int.max; deadline = start + s; laneRate = Double(rate) / Double(lanes)
        }
        var written = Written(perCluster: Array(repeating: 0, count: mesh.clusters.count),
                              records: Array(repeating: [], count: mesh.clusters.count),
                              lastIndex: Array(repeating: 0, count: mesh.clusters.count), errors: 0, seconds: 0)
        let writeBatch = self.writeBatch
        let lanes = self.lanes
        try await withThrowingTaskGroup(of: (Int, [AAMesh.Write], Int).self) { group in
            for c in mesh.clusters.indices {
                let runtime = try mesh.leader(c)
                for lane in 0 ..< lanes {
                    group.addTask {
                        var records: [AAMesh.Write] = []
                        var errors = 0
                        var n = 0
                        while n < perLane && monotonicSeconds() < deadline {
                            if laneRate > 0 {
                                // Paced: the next request once its writes are due.
                                let due = start + Double(n) / laneRate
                                let wait = due - monotonicSeconds()
                                if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000) + 1)) }
                            }
                            let size = min(writeBatch, perLane - n)
                            let commands = (n ..< n + size).map { Command.set(Key(Array("\(phase)\(c)-\(lane)-\($0)".utf8)), value) }
                            let results = await runtime.execute(batch: commands)
                            let now = monotonicSeconds()
                            for result in results {
                                if case .success(let r) = result, r.isSuccess {
                                    records.append(AAMesh.Write(index: r.index, time: now))
                                } else {
                                    errors += 1
                                }
                            }
                            n += size
                        }
                        return (c, records, errors)
                    }
                }
            }
            for try await (c, records, errors) in group {
                written.perCluster[c] += records.count
                written.records[c] += records
                written.lastIndex[c] = max(written.lastIndex[c], records.map(\.index).max() ?? 0)
                written.errors += errors
            }
        }
        written.seconds = monotonicSeconds() - start
        return written
    }
}

/// The figures of one scenario.
struct AAReport {
    struct Figure {
        var events: Int
        var seconds: Double
        var lags: [Double] = []
        var perSecond: Double { Double(events) / max(seconds, 1e-9) }
        func percentile(_ p: Double) -> Double {
            lags.isEmpty ? 0 : lags[min(lags.count - 1, Int(Double(lags.count) * p))] * 1000
        }
    }

    var clusters: Int
    var nodes: Int
    var valueBytes: Int
    var compression: String
    var batchEntries: Int
    var links: [String]
    /// Writes per second offered per cluster in the load phase (0: closed loop).
    var offeredRate = 0
    var drain: [Figure] = []
    var load: [Figure] = []
    var writesPerSecond: [Double] = []
    var writeErrors = 0
    var linkErrors = 0
    var lastLinkError: String?
    /// Load-phase writes no merge carried before the run ended.
    var undelivered = 0
    /// The process's CPU seconds (every node, every link) while the backlog drained,
    /// and the events that drain delivered over all links.
    var drainCPUSeconds = 0.0
    var drainEvents = 0
    /// CPU microseconds per event delivered in the drain (0 without one).
    var drainCPUMicrosPerEvent: Double { drainEvents > 0 ? drainCPUSeconds * 1e6 / Double(drainEvents) : 0 }

    var allLags: [Double] { load.flatMap(\.lags).sorted() }

    var json: String {
        let all = Figure(events: 0, seconds: 0, lags: allLags)
        let perLink = links.indices.map { k in
            let drained = k < drain.count ? drain[k] : Figure(events: 0, seconds: 0)
            let loaded = k < load.count ? load[k] : Figure(events: 0, seconds: 0)
            return #"{"link":"\#(links[k])","drain_events":\#(drained.events),"drain_seconds":\#(fmt(drained.seconds)),"drain_events_per_sec":\#(Int(drained.perSecond)),"load_events":\#(loaded.events),"load_events_per_sec":\#(Int(loaded.perSecond)),"lag_p50_ms":\#(fmt(loaded.percentile(0.5))),"lag_p99_ms":\#(fmt(loaded.percentile(0.99))),"lag_max_ms":\#(fmt(loaded.percentile(1)))}"#
        }
        let error = lastLinkError.map { "\"\($0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" } ?? "null"
        return #"{"bench":"aa","clusters":\#(clusters),"nodes_per_cluster":\#(nodes),"topology":"mesh","transport":"in-process, no HTTP","fsync":true,"value_bytes":\#(valueBytes),"offered_rate_per_cluster":\#(offeredRate),"compression":"\#(compression)","batch_entries":\#(batchEntries),"min_drain_events_per_sec_per_link":\#(Int(drain.map(\.perSecond).min() ?? 0)),"drain_cpu_seconds":\#(fmt(drainCPUSeconds)),"drain_cpu_us_per_event":\#(fmt(drainCPUMicrosPerEvent)),"lag_p50_ms":\#(fmt(all.percentile(0.5))),"lag_p99_ms":\#(fmt(all.percentile(0.99))),"lag_max_ms":\#(fmt(all.percentile(1))),"writes_per_sec_per_cluster":[\#(writesPerSecond.map { "\(Int($0))" }.joined(separator: ","))],"write_errors":\#(writeErrors),"link_errors":\#(linkErrors),"last_link_error":\#(error),"undelivered":\#(undelivered),"links":[\#(perLink.joined(separator: ","))],"build":"\#(buildMode)"}"#
    }

    var text: String {
        var lines = ["\(clusters) clusters × \(nodes) nodes, \(links.count) links:"]
        for k in links.indices {
            var line = "  \(links[k]):"
            if k < drain.count { line += " drain \(drain[k].events) events in \(fmt(drain[k].seconds)) s = \(Int(drain[k].perSecond)) events/s;" }
            if k < load.count {
                line += " load \(load[k].events) events, \(Int(load[k].perSecond)) events/s, lag p50 \(fmt(load[k].percentile(0.5))) ms, p99 \(fmt(load[k].percentile(0.99))) ms, max \(fmt(load[k].percentile(1))) ms"
            }
            lines.append(line)
        }
        if drainEvents > 0 {
            lines.append("  drain CPU: \(fmt(drainCPUSeconds)) s of the process's CPU for \(drainEvents) events over all links = \(fmt(drainCPUMicrosPerEvent)) µs per event (every node and link step included)")
        }
        let all = Figure(events: 0, seconds: 0, lags: allLags)
        lines.append("  all links under load: lag p50 \(fmt(all.percentile(0.5))) ms, p99 \(fmt(all.percentile(0.99))) ms; writes/s per cluster \(writesPerSecond.map { Int($0) }); write errors \(writeErrors), link errors \(linkErrors)\(lastLinkError.map { " (last: \($0))" } ?? ""), undelivered \(undelivered)")
        return lines.joined(separator: "\n")
    }
}
