import AegisRaft
import AegisStorage
import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `aegis-bench wal`: durable appends through the group commit, against the disk's own
/// serial fsync rate measured in the same run.
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

    @Option(help: "Parent directory for the temporary data (its disk is what is measured).")
    var dir: String = NSTemporaryDirectory()

    func run() throws {
        let root = (dir.hasSuffix("/") ? dir : dir + "/") + "aegis-bench-wal-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let disk = try Self.diskFsyncRate(path: root + "/disk-probe", seconds: min(seconds, 2))
        if !json {
            print("wal bench: \(entryBytes)-byte entries, every append waits for its fdatasync (group commit); "
                  + "\(ProcessInfo.processInfo.activeProcessorCount) cores; data under \(root)")
            print(String(format: "disk: %.0f serial 4 KiB write+fdatasync per second", disk))
        }
        for (k, count) in appenders.split(separator: ",").compactMap({ Int($0) }).enumerated() {
            let result = try scenario(appenders: count, directory: root + "/s\(k)")
            let line = result.report(diskFsyncsPerSec: disk, entryBytes: entryBytes)
            print(json ? line.json : line.text)
        }
    }

    struct Result {
        var appenders: Int, seconds: Double, entries: Int, bytes: Int, syncs: Int
        var latenciesNs: [UInt64]

        func percentile(_ p: Double) -> Double {
            guard !latenciesNs.isEmpty else { return 0 }
            let k = min(latenciesNs.count - 1, Int(Double(latenciesNs.count) * p))
            return Double(latenciesNs[k]) / 1e6
        }

        func report(diskFsyncsPerSec disk: Double, entryBytes: Int) -> (json: String, text: String) {
            let eps = Double(entries) / seconds, mbps = Double(bytes) / seconds / 1e6, fps = Double(syncs) / seconds
            let p50 = percentile(0.5), p99 = percentile(0.99)
            let json = "{\"bench\":\"wal\",\"appenders\":\(appenders),\"entry_bytes\":\(entryBytes),"
                + String(format: "\"seconds\":%.2f,\"entries\":%d,\"entries_per_sec\":%.0f,\"mb_per_sec\":%.2f,", seconds, entries, eps, mbps)
                + String(format: "\"fsyncs_per_sec\":%.0f,\"entries_per_fsync\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,", fps,
                         Double(entries) / Double(max(syncs, 1)), p50, p99)
                + String(format: "\"disk_fsyncs_per_sec\":%.0f,\"vs_disk_fsync_rate\":%.2f}", disk, fps / max(disk, 1))
            let text = String(format: "%3d appenders: %9.0f entries/s  %7.2f MB/s  %7.0f fsyncs/s  %5.1f entries/fsync  "
                              + "p50 %.3f ms  p99 %.3f ms", appenders, eps, mbps, fps,
                              Double(entries) / Double(max(syncs, 1)), p50, p99)
            return (json, text)
        }
    }

    /// Runs `appenders` threads, each appending one entry at a time and waiting for it.
    func scenario(appenders: Int, directory: String) throws -> Result {
        let storage = try DiskStorage(directory: directory)
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
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    do {
                        lock.lock()
                        let entry = LogEntry(index: next, term: 1, data: payload, timestamp: t0 / 1_000_000)
                        next += 1
                        let ticket: WriteTicket
                        do { ticket = try storage.submit(entries: [entry]) } catch { lock.unlock(); throw error }
                        lock.unlock()
                        try storage.waitUntilDurable(ticket)
                    } catch {
                        lock.lock(); failure = error; lock.unlock()
                        break
                    }
                    mine.append(DispatchTime.now().uptimeNanoseconds - t0)
                }
                lock.lock(); latencies[worker] = mine; lock.unlock()
                done.leave()
            }.start()
        }
        done.wait()
        if let failure { throw failure }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let after = storage.statistics
        return Result(appenders: appenders, seconds: elapsed, entries: after.entries - before.entries,
                      bytes: after.bytes - before.bytes, syncs: after.dataSyncs - before.dataSyncs,
                      latenciesNs: latencies.flatMap { $0 }.sorted())
    }

    /// Serial 4 KiB appending writes, each followed by `fdatasync`, per second.
    static func diskFsyncRate(path: String, seconds: Double) throws -> Double {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
        defer { close(fd); unlink(path) }
        let block = [UInt8](repeating: 0x5A, count: 4096)
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        var count = 0
        while DispatchTime.now().uptimeNanoseconds < deadline {
            let written = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(count * 4096)) }
            if written != 4096 { throw StorageError.io(operation: "write", path: path, errno: errno) }
            if fdatasync(fd) != 0 { throw StorageError.io(operation: "fdatasync", path: path, errno: errno) }
            count += 1
        }
        return Double(count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
