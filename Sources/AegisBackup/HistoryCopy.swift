public import AegisKV
import Foundation

/// What `CommittedHistory.writeCopy(options:limits:)` wrote.
public struct HistoryCopyReport: Sendable {
    /// The copy's last entry (the history's commit).
    public var position: LogPosition
    /// Keys in the copy.
    public var keyCount: Int
    /// The copy's cluster ID and its new UUID.
    public var clusterID: String
    public var clusterUUID: String
}

extension CommittedHistory {
    /// Writes the state at this history's commit index as the data directory of a new
    /// single-voter cluster under a NEW cluster UUID (it can never join the cluster it was
    /// read from): a copy without a backup repository, for DR drills. The same data
    /// directory a restore writes; nothing is written to `options.dataDirectory` if any
    /// step fails.
    public func writeCopy(options: RestoreOptions, limits: StateMachine.Limits = StateMachine.Limits())
        throws(BackupError) -> HistoryCopyReport {
        try BackupRepository.checkEmptyDestination(options.dataDirectory)
        let (machine, _) = try stateAtCommit(limits: limits)
        let uuid = options.clusterUUID ?? UUID().uuidString
        if let old = identity.clusterUUID, old.uppercased() == uuid.uppercased() {
            throw .invalidArgument("the copy needs a new cluster UUID, not its source's \(uuid)")
        }
        let clusterID = options.clusterID ?? identity.clusterID
        let state = RestoredState(machine: machine, position: commit, leaderTime: entries.last?.timestamp,
                                  entriesReplayed: entries.count, bytesRead: 0, digestsChecked: [])
        _ = try BackupRepository.writeDataDirectory(state: state, options: options, clusterID: clusterID,
                                                    clusterUUID: uuid)
        return HistoryCopyReport(position: commit, keyCount: machine.count, clusterID: clusterID, clusterUUID: uuid)
    }
}
