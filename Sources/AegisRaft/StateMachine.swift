/// An application state machine that committed log entries are applied to, in log
/// order, exactly once each. Used by `RaftNode` (the seed's convenience API) and by
/// the node runtime.
///
/// Applying must be deterministic: replicas that apply the same entries in the same
/// order reach the same state.
public protocol ReplicatedStateMachine {
    /// What applying one entry returns to the proposer.
    associatedtype Output

    /// Applies one committed entry (of any `EntryType`; most implementations ignore
    /// `.noOp` and `.configChange` entries but still record their index as applied).
    mutating func apply(_ entry: LogEntry) -> Output

    /// The index of the last entry applied (0 if none).
    var appliedIndex: LogIndex { get }

    /// Serialises the whole state for a snapshot.
    func snapshotData() throws -> [UInt8]

    /// Replaces the whole state with a snapshot's.
    mutating func restore(from snapshot: Snapshot) throws
}
