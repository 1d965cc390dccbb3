/// Where a follower reassembles a snapshot that a leader sends in chunks
/// (`InstallSnapshotRequest`).
///
/// The core validates every chunk before it reaches the receiver: calls come as
/// `begin`, then `append` with contiguous offsets starting at 0 (each the previous
/// offset plus the previous chunk's size), then `finish` once — or `abort` at any
/// point. The total never exceeds `RaftConfig.maxSnapshotBytes`. A new `begin` may
/// come without an `abort` first; it discards any partial snapshot.
///
/// An error thrown by `begin`, `append` or `finish` makes the core drop the transfer
/// and throw `RaftError.snapshotReceiveFailed` (the leader restarts it later).
///
/// `MemorySnapshotReceiver` keeps the bytes in memory; `AegisStorage` has one that
/// writes them to a temporary file.
public protocol SnapshotReceiver: AnyObject {
    /// Starts receiving the snapshot described by `metadata`, discarding any partial one.
    func begin(_ metadata: SnapshotMetadata) throws
    /// Stores `bytes` at `offset` of the snapshot.
    func append(_ bytes: [UInt8], at offset: UInt64) throws
    /// Returns the whole snapshot and releases what was held for it.
    func finish() throws -> [UInt8]
    /// Discards the partial snapshot, if any. Never fails.
    func abort()
}

/// A `SnapshotReceiver` that reassembles the snapshot in memory. The default.
///
/// Not thread-safe: the core that owns it uses it from its one executor.
public final class MemorySnapshotReceiver: SnapshotReceiver {
    private var data: [UInt8] = []
    private var receiving = false

    /// Creates an empty receiver.
    public init() {}

    public func begin(_ metadata: SnapshotMetadata) throws {
        data = []
        receiving = true
    }

    public func append(_ bytes: [UInt8], at offset: UInt64) throws {
        guard receiving else { throw RaftError.snapshotReceiveFailed("append without begin") }
        guard offset == UInt64(data.count) else {
            throw RaftError.snapshotReceiveFailed("chunk at offset \(offset), expected \(data.count)")
        }
        data.append(contentsOf: bytes)
    }

    public func finish() throws -> [UInt8] {
        guard receiving else { throw RaftError.snapshotReceiveFailed("finish without begin") }
        let whole = data
        data = []
        receiving = false
        return whole
    }

    public func abort() {
        data = []
        receiving = false
    }
}
