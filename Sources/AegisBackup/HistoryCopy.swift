public import AegisRaft
import AegisStorage
import Foundation

/// What `CommittedHistory.writeCopy(options:)` wrote.
public struct HistoryCopyReport: Sendable {
    /// The copy's last entry (the history's commit).
    public var position: LogPosition
    /// Entries after the node's snapshot that the copy replays when it starts.
    public var entriesToReplay: Int
    /// The copy's cluster ID and its new UUID.
    public var clusterID: String
    public var clusterUUID: String
}

extension CommittedHistory {
    /// Writes this history as the data directory of a new single-voter cluster under a
    /// NEW cluster UUID (it can never join the cluster it was read from): the node's
    /// snapshot bytes as they are and the committed entries after it, so that the copy
    /// holds exactly the state at the commit index once it replayed them, without this
    /// tool decoding the state (DR drills: fast with millions of keys). The snapshot's
    /// membership and every configuration change are replaced by the one voter
    /// (configuration entries become no-ops at the same index and term), so the copy
    /// never counts the source's members. Nothing is written to `options.dataDirectory`
    /// if any step fails.
    public func writeCopy(options: RestoreOptions) throws(BackupError) -> HistoryCopyReport {
        try BackupRepository.checkEmptyDestination(options.dataDirectory)
        let uuid = options.clusterUUID ?? UUID().uuidString
        if let old = identity.clusterUUID, old.uppercased() == uuid.uppercased() {
            throw .invalidArgument("the copy needs a new cluster UUID, not its source's \(uuid)")
        }
        let clusterID = options.clusterID ?? identity.clusterID
        let final = options.dataDirectory
        let temporary = final + ".copying-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let conf = ConfState(voters: [NodeID(options.nodeID)])
        let position = commit
        do {
            let storage = try DiskStorage(directory: temporary, options: DiskStorageOptions(initialConf: conf))
            if snapshot.index > 0 {
                let metadata = SnapshotMetadata(index: snapshot.index, term: snapshot.term, confState: conf)
                try storage.applySnapshot(Snapshot(metadata: metadata, data: snapshotData))
            }
            let log = entries.map { entry in
                entry.type == .configChange
                    ? LogEntry(index: entry.index, term: entry.term, type: .noOp, data: [], timestamp: entry.timestamp)
                    : entry
            }
            try storage.save(hardState: RaftState(term: position.term, votedFor: nil, commitIndex: position.index),
                             entries: log)
            storage.close()
            try DataDirectoryIdentity(clusterID: clusterID, clusterUUID: uuid, nodeID: options.nodeID,
                                      membership: .member).write(to: temporary)
            try BackupRepository.checkEmptyDestination(final)
            if FileManager.default.fileExists(atPath: final) { try FileManager.default.removeItem(atPath: final) }
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if let error = error as? BackupError { throw error }
            throw .target(operation: "write data directory", name: final, detail: "\(error)")
        }
        return HistoryCopyReport(position: position, entriesToReplay: entries.count, clusterID: clusterID, clusterUUID: uuid)
    }
}
