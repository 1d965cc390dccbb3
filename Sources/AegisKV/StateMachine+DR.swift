import AegisRaft

// Disaster recovery in the state machine: the epoch (fencing token), the role, and
// the change stream's link cursors live here, so they are replicated by the cluster's
// Raft log, restored from its snapshots, and checked where every write is applied.
//
// Rules (each enforced in one place, below):
// - A client write on a cluster that is not the primary fails with `readOnly`
//   (`apply(_:at:timestamp:)`).
// - A stream batch is applied only by a standby, only from an epoch at least its own
//   (it then follows that epoch), and only past the link's cursor: the part at or
//   below the cursor is skipped (a re-sent batch applies nothing twice), a batch that
//   starts after the cursor fails with `streamGap` (nothing lost silently). The
//   changes and the new cursor are applied together, as the one entry. A standby
//   that must be re-seeded from the batch's source (`DRState.pendingSeed`, failback)
//   takes none of its batches (`streamGap`) until the seed (DRSeed.swift).
// - A transition needs an epoch at least the cluster's; becoming primary from another
//   role needs a higher one (a failover always raises the epoch).

extension StateMachine {
    /// Applies a stream batch as the entry at `index`: the result's `integer` is the
    /// link's cursor afterwards, `keyCount` the number of changes applied.
    mutating func applyStream(_ batch: StreamBatch, at index: LogIndex) -> CommandResult {
        guard batch.epoch >= drState.epoch else {
            return failure(.staleEpoch(received: batch.epoch, current: drState.epoch, primary: drState.primary), at: index)
        }
        guard drState.role == .standby else {
            return failure(.notStandby(role: drState.role, epoch: drState.epoch), at: index)
        }
        let cursor = drState.cursors[batch.source]
        let applied = cursor?.lastIndex ?? 0
        // A failed-back standby takes nothing from its new primary before its seed.
        guard batch.afterIndex <= applied, drState.pendingSeed != batch.source else {
            var result = failure(.streamGap(source: batch.source, cursor: applied, afterIndex: batch.afterIndex), at: index)
            result.integer = Int64(clamping: applied)
            return result
        }
        drState.epoch = batch.epoch
        var count = 0
        var lastPhysical = cursor?.lastPhysical ?? 0
        for change in batch.changes where change.sourceIndex > applied {
            // The change failed or succeeded on the source exactly as it does here (same
            // state, same order), so its own outcome is not the batch's.
            _ = execute(change.command, at: index, timestamp: change.timestamp.physical)
            lastPhysical = Swift.max(lastPhysical, change.timestamp.physical)
            count += 1
        }
        let last = Swift.max(applied, batch.lastIndex)
        drState.cursors[batch.source] = StreamCursor(lastIndex: last, epoch: batch.epoch, lastPhysical: lastPhysical,
                                                     sourceCommit: Swift.max(batch.sourceCommit, last))
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(clamping: last)
        result.keyCount = count
        return result
    }

    /// Applies a DR transition as the entry at `index`: the result's `integer` is the epoch.
    mutating func applyTransition(_ transition: DRTransition, at index: LogIndex) -> CommandResult {
        guard transition.epoch >= drState.epoch else {
            return failure(.staleEpoch(received: transition.epoch, current: drState.epoch, primary: drState.primary),
                           at: index)
        }
        if transition.role == .primary && drState.role != .primary && transition.epoch == drState.epoch {
            return failure(.staleEpoch(received: transition.epoch, current: drState.epoch, primary: drState.primary),
                           at: index)
        }
        drState.epoch = transition.epoch
        drState.role = transition.role
        drState.primary = transition.primary
        drState.primaryAdmin = transition.primaryAdmin
        drState.leaseMillis = transition.leaseMillis
        if transition.role != .standby { drSeed = nil }
        if !transition.resumeSource.isEmpty {
            let kept = drState.cursors[transition.resumeSource]
            if (kept?.lastIndex ?? 0) < transition.resumeIndex {
                drState.cursors[transition.resumeSource] = StreamCursor(
                    lastIndex: transition.resumeIndex, epoch: transition.epoch, lastPhysical: kept?.lastPhysical ?? 0,
                    sourceCommit: Swift.max(kept?.sourceCommit ?? 0, transition.resumeIndex))
            }
        }
        var result = CommandResult(index: index, revision: revision)
        result.integer = Int64(clamping: transition.epoch)
        return result
    }
}
