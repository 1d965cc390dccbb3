import AegisBackup
import AegisKV
import AegisRaft
import AegisStorage
import ArgumentParser
import Foundation

/// `aegis-bench backup`: a full backup and a restore of a large state, per codec.
///
/// Setup: a data directory written as a node writes it (DiskStorage: the keys as SET
/// entries in batches, a node snapshot, the log compacted), then for each codec: a full
/// backup from the data directory (read the snapshot, rebuild the state, stream it
/// compressed and hashed to a local repository) and a restore of it into a new data
/// directory (read, check, decompress, rebuild, write).
struct BackupBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Full backup and restore time, throughput and ratio per codec (1M keys of 256 B by default).")

    @Flag(help: "Print one JSON object per codec.") var json = false
    @Option(help: "Keys.") var keys: Int = 1_000_000
    @Option(help: "Value bytes.") var valueBytes: Int = 256
    @Option(help: "Comma-separated codecs.") var codecs: String = "none,lz4,zstd,gzip"
    @Option(help: "Committed entries after the node's snapshot (0: the backup stores the node's snapshot bytes as they are; more: the state is rebuilt from the snapshot and the log).")
    var entriesAfterSnapshot: Int = 0
    @Option(help: "Parent directory for the temporary data.") var dir: String = NSTemporaryDirectory()

    func run() async throws {
        let root = (dir.hasSuffix("/") ? dir : dir + "/") + "aegis-bench-backup-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let node = root + "/node"
        let setupStart = monotonicSeconds()
        try makeDataDirectory(node)
        if !json {
            print("backup bench (\(buildMode)): \(keys) keys of \(valueBytes) B, \(entriesAfterSnapshot) committed entries "
                  + "after the node's snapshot, \(ProcessInfo.processInfo.activeProcessorCount) "
                  + "cores; data directory written in \(fmt(monotonicSeconds() - setupStart)) s under \(root)")
        }
        for name in codecs.split(separator: ",") {
            guard let codec = BackupCompression(rawValue: String(name)) else {
                throw ValidationError("unknown codec '\(name)'")
            }
            let repository = BackupRepository(target: LocalDirectoryTarget(root: root + "/repo-\(name)"),
                                              settings: BackupSettings(compression: codec))
            let t0 = monotonicSeconds()
            let history = try CommittedHistory.read(dataDirectory: node)
            let manifest = try await repository.createBackup(.full, from: history)
            let backupSeconds = monotonicSeconds() - t0
            let raw = Double(manifest.files.reduce(0) { $0 + $1.rawSize })
            let stored = Double(manifest.storedBytes)
            let t1 = monotonicSeconds()
            let report = try await repository.restore(to: .latest,
                                                      options: RestoreOptions(dataDirectory: root + "/restored-\(name)"))
            let restoreSeconds = monotonicSeconds() - t1
            guard report.keyCount == keys else { throw ValidationError("restored \(report.keyCount) keys, not \(keys)") }
            try? FileManager.default.removeItem(atPath: root + "/restored-\(name)")
            try? FileManager.default.removeItem(atPath: root + "/repo-\(name)")
            if json {
                print(#"{"bench":"backup","codec":"\#(name)","keys":\#(keys),"value_bytes":\#(valueBytes),"#
                      + #""entries_after_snapshot":\#(entriesAfterSnapshot),"#
                      + #""raw_bytes":\#(Int(raw)),"stored_bytes":\#(Int(stored)),"ratio":\#(fmt(raw / max(stored, 1))),"#
                      + #""backup_seconds":\#(fmt(backupSeconds)),"backup_mb_per_s":\#(fmt(raw / 1e6 / backupSeconds)),"#
                      + #""restore_seconds":\#(fmt(restoreSeconds)),"restore_mb_per_s":\#(fmt(raw / 1e6 / restoreSeconds)),"#
                      + #""build":"\#(buildMode)"}"#)
            } else {
                print("\(name): full backup \(fmt(backupSeconds)) s (\(fmt(raw / 1e6 / backupSeconds)) MB/s of state), "
                      + "\(Int(raw)) -> \(Int(stored)) bytes (ratio \(fmt(raw / max(stored, 1)))); restore "
                      + "\(fmt(restoreSeconds)) s (RTO as reported: \(report.durationMillis) ms)")
            }
        }
    }

    /// Writes the keys as SET entries in batches, takes a node snapshot and compacts.
    private func makeDataDirectory(_ directory: String) throws {
        let storage = try DiskStorage(directory: directory,
                                      options: DiskStorageOptions(initialConf: ConfState(voters: ["n1"])))
        defer { storage.close() }
        try DataDirectoryIdentity(clusterID: "bench", clusterUUID: UUID().uuidString, nodeID: "n1", membership: .member)
            .write(to: directory)
        var machine = StateMachine()
        machine.reserveCapacity(keys)
        var index: LogIndex = 0
        var batch: [LogEntry] = []
        var value = [UInt8](repeating: 0, count: valueBytes)
        var rng = SystemRandomNumberGenerator()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        for k in 0..<keys {
            for j in stride(from: 0, to: valueBytes, by: 8) { value[j] = UInt8.random(in: 0...255, using: &rng) }
            index += 1
            let entry = LogEntry(index: index, term: 1, type: .command,
                                 data: Command.set(Key("key:\(k)"), value).encoded(), timestamp: now)
            machine.apply(entry)
            batch.append(entry)
            if batch.count == 4096 || k == keys - 1 {
                try storage.save(hardState: RaftState(term: 1, votedFor: nil, commitIndex: index), entries: batch, sync: false)
                batch.removeAll(keepingCapacity: true)
            }
        }
        try storage.sync()
        try storage.createSnapshot(at: index, conf: ConfState(voters: ["n1"]), data: machine.snapshotData())
        try storage.compact(upTo: index)
        for k in 0..<entriesAfterSnapshot {
            index += 1
            batch.append(LogEntry(index: index, term: 1, type: .command,
                                  data: Command.set(Key("key:\(k % keys)"), value).encoded(), timestamp: now))
        }
        if !batch.isEmpty { try storage.save(hardState: RaftState(term: 1, votedFor: nil, commitIndex: index), entries: batch) }
    }
}
