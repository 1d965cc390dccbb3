import AegisRaft
import AegisStorage
import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `aegis-bench wal`: durable appends through the group commit, against the disk's own
/// serial fsync rate measured in the same run.
///
/// Two modes, printed separately: `wait-each` (every appender waits for each entry
/// before the next, so at most one entry per appender shares an `fdatasync`) and, with
/// `--inflight N`, `pipelined` (every appender keeps N entries outstanding, as the
/// Raft runtime does when it hands batches to storage without waiting for each).
struct WALBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Write-ahead log: fsynced appends with 1, 16 and 64 concurrent appenders.")

    @Flag(help: "Print one JSON object per scenario.")
    var json = false

    @Option(help: "Seconds per scenario.")
    var seconds: Double = 3

    @Option(help: "Payload bytes per entry.")
    var entryBytes: Int = 256

    @Option(help: "Comma-separated appender counts.")
    var appenders: String = "1,16,64"

    @Option(help: "Entries each appender keeps outstanding in the extra pipelined scenarios (0: none).")
    var inflight: Int = 16

    @Flag(inversion: .prefixedNo, help: "Zero-fill WAL segments when they are created (the default).")
    var preallocate = true

    @Option(help: "Parent directory for the temporary data (its disk is what is measured).")
    var dir: String = NSTemporaryDirectory()

    func run() throws {
        let root = (dir.hasSuffix("/") ? dir : dir + "/") + "aegis-bench-wal-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let disk = try DiskProbe.measure(path: root + "/disk-probe", seconds: min(seconds, 2))
        if !json {
            print("wal bench (\(buildMode)): \(entryBytes)-byte entries, group commit with one fdatasync per batch; "
                  + "segments \(preallocate ? "preallocated (zero-filled)" : "appended"); "
                  + "\(ProcessInfo.processInfo.activeProcessorCount) cores; data under \(root)")
            print(String(format: "disk: serial 4 KiB write+fdatasync per second: %.0f into a preallocated (zero-filled, "
                         + "synced) file, %.0f appending (median of %d interleaved rounds)",
                         disk.preallocated, disk.appending, DiskProbe.rounds))
        }
        let counts = appenders.split(separator: ",").compactMap { Int($0) }
        var scenarios = counts.map { (appenders: $0, inflight: 1) }
        if inflight > 1 { scenarios += counts.map { (appenders: $0, inflight: inflight) } }
        for (k, scenario) in scenarios.enumerated() {
            let result = try run(appenders: scenario.appenders, inflight: scenario.inflight, directory: root + "/s\(k)")
            let line = result.report(disk: disk, preallocated: preallocate, entryBytes: entryBytes)
            print(json ? line.json : line.text)
        }
    }

    struct Result {
        var appenders: Int, inflight: Int, seconds: Double, entries: Int, bytes: Int, syncs: Int
        var latenciesNs: [UInt64]
        /// Segment files started during the run.
        var segments: Int = 0

        func percentile(_ p: Double) -> Double {
            guard !latenciesNs.isEmpty else { return 0 }
            let k = min(latenciesNs.count - 1, Int(Double(latenciesNs.count) * p))
            return Double(latenciesNs[k]) / 1e6
        }

        func report(disk: DiskProbe, preallocated: Bool, entryBytes: Int) -> (json: String, text: String) {
            let eps = Double(entries) / seconds, mbps = Double(bytes) / seconds / 1e6, fps = Double(syncs) / seconds
            let p50 = percentile(0.5), p99 = percentile(0.99), p999 = percentile(0.999)
            let maxMs = Double(latenciesNs.last ?? 0) / 1e6
            let mode = inflight > 1 ? "pipelined" : "wait-each"
            let reference = preallocated ? disk.preallocated : disk.appending
            let json = "{\"bench\":\"wal\",\"mode\":\"\(mode)\",\"appenders\":\(appenders),\"inflight\":\(inflight),"
                + "\"entry_bytes\":\(entryBytes),\"preallocated\":\(preallocated),"
                + String(format: "\"seconds\":%.2f,\"entries\":%d,\"entries_per_sec\":%.0f,\"mb_per_sec\":%.2f,", seconds, entries, eps, mbps)
                + String(format: "\"fsyncs_per_sec\":%.0f,\"entries_per_fsync\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"segments_created\":%d,", fps,
                         Double(entries) / Double(max(syncs, 1)), p50, p99, p999, maxMs, segments)
                + String(format: "\"disk_fsyncs_per_sec\":%.0f,\"disk_append_fsyncs_per_sec\":%.0f,"
                         + "\"disk_preallocated_fsyncs_per_sec\":%.0f,\"vs_disk_fsync_rate\":%.2f}",
                         reference, disk.appending, disk.preallocated, fps / max(reference, 1))
            let text = String(format: "%-9@ %3d appenders x %2d in flight: %9.0f entries/s  %7.2f MB/s  %7.0f fsyncs/s "
                              + "(%.2f of disk)  %5.1f entries/fsync  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  (%d segments created)",
                              mode, appenders, inflight, eps, mbps, fps, fps / max(reference, 1),
                              Double(entries) / Double(max(syncs, 1)), p50, p99, p999, maxMs, segments)
            return (json, text)
        }
    }

    /// Runs `appenders` threads; each keeps up to `inflight` appended entries waiting to
    /// become durable (1: appends one entry and waits for it before the next).
    func run(appenders: Int, inflight: Int, directory: String) throws -> Result {
        var options = DiskStorageOptions()
        options.preallocateSegments = preallocate
        let storage = try DiskStorage(directory: directory, options: options)
        defer { storage.close() }
        let payload = [UInt8](repeating: 0xA5, count: entryBytes)
        let lock = NSLock()
        nonisolated(unsafe) var next: LogIndex = 1
        nonisolated(unsafe) var latencies: [[UInt64]] = Array(repeating: [], count: appenders)
        nonisolated(unsafe) var failure: (any Error)?
        let before = storage.statistics
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        let done = DispatchGroup()
        for worker in 0..<appenders {
            done.enter()
            Thread {
                var mine: [UInt64] = []
                mine.reserveCapacity(1 << 16)
                var outstanding: [(ticket: WriteTicket, start: UInt64)] = []
                var head = 0
                do {
                    while true {
                        let now = DispatchTime.now().uptimeNanoseconds
                        if now < deadline && outstanding.count - head < inflight {
                            lock.lock()
                            let entry = LogEntry(index: next, term: 1, data: payload, timestamp: now / 1_000_000)
                            next += 1
                            let ticket: WriteTicket
                            do { ticket = try storage.submit(entries: [entry]) } catch { lock.unlock(); throw error }
                            lock.unlock()
                            outstanding.append((ticket, now))
                            continue
                        }
                        guard head < outstanding.count else { break }
                        try storage.waitUntilDurable(outstanding[head].ticket)
                        // Everything up to the oldest is durable; collect what else already is.
                        let end = DispatchTime.now().uptimeNanoseconds
                        repeat {
                            mine.append(end - outstanding[head].start)
                            head += 1
                        } while head < outstanding.count && storage.isDurable(outstanding[head].ticket)
                        if head > 4096 { outstanding.removeFirst(head); head = 0 }
                    }
                } catch {
                    lock.lock(); failure = error; lock.unlock()
                }
                lock.lock(); latencies[worker] = mine; lock.unlock()
                done.leave()
            }.start()
        }
        done.wait()
        if let failure { throw failure }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = storage.statistics
        return Result(appenders: appenders, inflight: inflight, seconds: elapsed, entries: after.entries - before.entries,
                      bytes: after.bytes - before.bytes, syncs: after.dataSyncs - before.dataSyncs,
                      latenciesNs: latencies.flatMap { $0 }.sorted(),
                      segments: after.segmentsCreated - before.segmentsCreated)
    }
}

/// The disk's own rate of serial 4 KiB `pwrite` + `fdatasync`, measured two ways in
/// interleaved rounds (so that a noisy neighbour hits both alike): appending to a file
/// (each sync also writes the inode: new size and blocks) and overwriting a file that
/// was zero-filled and synced beforehand (a data-only sync, as in a preallocated segment).
struct DiskProbe {
    static let rounds = 5
    /// Per second, median over the rounds.
    var appending: Double, preallocated: Double

    static func measure(path: String, seconds: Double) throws -> DiskProbe {
        let perRound = seconds / Double(2 * rounds)
        var appending: [Double] = [], preallocated: [Double] = []
        for _ in 0..<rounds {
            appending.append(try rate(path: path, seconds: perRound, preallocated: false))
            preallocated.append(try rate(path: path, seconds: perRound, preallocated: true))
        }
        return DiskProbe(appending: appending.sorted()[rounds / 2], preallocated: preallocated.sorted()[rounds / 2])
    }

    private static func rate(path: String, seconds: Double, preallocated: Bool) throws -> Double {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
        defer { close(fd); unlink(path) }
        let blocks = 16 << 8  // 16 MiB of 4 KiB blocks, reused round-robin
        if preallocated {
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            for k in 0..<(blocks * 4096 / zeros.count) {
                let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(k * $0.count)) }
                if written != zeros.count { throw StorageError.io(operation: "write", path: path, errno: errno) }
            }
            if fsync(fd) != 0 { throw StorageError.io(operation: "fsync", path: path, errno: errno) }
        }
        let block = [UInt8](repeating: 0x5A, count: 4096)
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        var count = 0
        while DispatchTime.now().uptimeNanoseconds < deadline {
            let offset = preallocated ? (count % blocks) * 4096 : count * 4096
            let written = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(offset)) }
            if written != 4096 { throw StorageError.io(operation: "write", path: path, errno: errno) }
            if fdatasync(fd) != 0 { throw StorageError.io(operation: "fdatasync", path: path, errno: errno) }
            count += 1
        }
        return Double(count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
