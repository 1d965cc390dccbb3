import AegisRaft

extension NodeLoop {
    /// The committed entries after `index` (see `NodeRuntime.committedEntries`).
    func committedEntries(after index: LogIndex, maxCount: Int, maxBytes: Int) -> CommittedEntries {
        let commit = core.log.committed
        let first = (try? core.log.firstIndex()) ?? 0
        guard index < commit, index + 1 >= first, maxCount > 0 else {
            return CommittedEntries(entries: [], commitIndex: commit, firstIndex: first)
        }
        let (end, overflow) = (index + 1).addingReportingOverflow(UInt64(maxCount))
        let high = overflow ? commit + 1 : min(commit + 1, end)
        let entries = (try? core.log.slice(index + 1, high, maxBytes: max(1, maxBytes))) ?? []
        return CommittedEntries(entries: entries, commitIndex: commit, firstIndex: first)
    }

    /// Why the leader refuses to propose a client command now (`NodeConfiguration.writeGuard`).
    func guardRefusal(_ data: [UInt8]) -> ReplicationError? {
        config.writeGuard?(data)
    }
}
