public import AegisCRDT
public import AegisKV
public import AegisRaft

/// Turns a source cluster's committed log entries into stream batches: the client
/// writes among them, each tagged with its origin and a hybrid logical clock timestamp.
///
/// The timestamp's physical part is the entry's leader timestamp (`LogEntry.timestamp`);
/// the logical part makes timestamps strictly increase along the log even when a new
/// leader's clock is behind the old one's (the HLC rule, applied to the log order).
public struct StreamBatcher: Sendable {
    /// The source cluster's ID (the origin of its own writes).
    public let source: String
    /// The last timestamp given, or `nil` before the first.
    public private(set) var lastTimestamp: HLCTimestamp?

    /// Creates a batcher for cluster `source`.
    public init(source: String) {
        self.source = source
    }

    /// Builds the batch covering `entries`, which must be the committed entries right
    /// after `afterIndex`, in order (the caller bounds their number and bytes).
    /// Entries that change nothing on a standby (reads, no-ops, membership changes,
    /// the source's own DR commands, malformed data) are covered but carry no change.
    public mutating func batch(after afterIndex: UInt64, entries: [LogEntry], epoch: UInt64,
                               sourceCommit: UInt64) -> StreamBatch {
        var changes: [StreamChange] = []
        var last = afterIndex
        let origin = ReplicaID(source)
        for entry in entries where entry.index > last {
            last = entry.index
            guard entry.type == .command, let command = try? Command(decoding: entry.data),
                  command.isWrite, !command.isReplicationControl else { continue }
            let stamp = next(physical: entry.timestamp, replica: origin)
            changes.append(StreamChange(sourceIndex: entry.index, origin: origin, timestamp: stamp, command: command))
        }
        return StreamBatch(source: source, epoch: epoch, afterIndex: afterIndex, lastIndex: last,
                           sourceCommit: max(sourceCommit, last), changes: changes)
    }

    /// The next timestamp: `physical` if it is ahead of the last one, else the last
    /// one's physical time with the logical counter raised.
    mutating func next(physical: UInt64, replica: ReplicaID) -> HLCTimestamp {
        let stamp: HLCTimestamp
        if let last = lastTimestamp, physical <= last.physical {
            if last.logical == UInt32.max {
                stamp = HLCTimestamp(physical: last.physical + 1, logical: 0, replica: replica)
            } else {
                stamp = HLCTimestamp(physical: last.physical, logical: last.logical + 1, replica: replica)
            }
        } else {
            stamp = HLCTimestamp(physical: physical, logical: 0, replica: replica)
        }
        lastTimestamp = stamp
        return stamp
    }
}
