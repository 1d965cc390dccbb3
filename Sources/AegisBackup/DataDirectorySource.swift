import AegisCRDT
public import AegisKV
public import AegisRaft
public import AegisStorage

/// The committed history of one member's data directory, read without changing it
/// (the node may be running: its log is read as it is on disk, a torn tail ends it).
///
/// The consistent view a full backup stores is the state machine at the commit index
/// the directory's hard state records: the node's snapshot restored, then every
/// committed entry after it applied — a state every replica passes through, taken
/// without stopping writes. Memory: the entries kept in the WAL (the node compacts its
/// log after each snapshot) plus one state machine.
public struct CommittedHistory: Sendable {
    /// The directory's identity (cluster ID and UUID, node ID).
    public var identity: DataDirectoryIdentity
    /// The node's snapshot the history starts from (index 0: none).
    public var snapshot: SnapshotMetadata
    /// The committed entries after the snapshot, in order (`snapshot.index + 1 ... commit`).
    public var entries: [LogEntry]
    /// Committed entries at or below the snapshot that the WAL still holds, oldest first
    /// (an incremental backup whose parent ends before the snapshot reads them).
    public var entriesBeforeSnapshot: [LogEntry]
    /// The snapshot's bytes (empty when there is none).
    var snapshotData: [UInt8]

    /// The commit index of the directory.
    public var commit: LogPosition {
        if let last = entries.last { return LogPosition(index: last.index, term: last.term) }
        return LogPosition(index: snapshot.index, term: snapshot.term)
    }

    /// Reads `directory`. Retries a few times when the node removes a snapshot file or a
    /// segment while it is being read.
    ///
    /// - Parameter snapshotData: whether to read the node's snapshot file (needed for the
    ///   state; not for archiving the log).
    public static func read(dataDirectory directory: String, snapshotData: Bool = true) throws(BackupError)
        -> CommittedHistory {
        var lastError = BackupError.source("\(directory) could not be read")
        for _ in 0..<5 {
            do { return try readOnce(directory, snapshotData: snapshotData) } catch {
                lastError = error
                if case .source = error { throw error }
            }
        }
        throw lastError
    }

    private static func readOnce(_ directory: String, snapshotData: Bool) throws(BackupError) -> CommittedHistory {
        let identity: DataDirectoryIdentity
        do {
            guard let found = try DataDirectoryIdentity.read(from: directory) else {
                throw BackupError.source("\(directory) has no identity file: it is not an Aegis data directory "
                    + "(or the node never started)")
            }
            identity = found
        } catch let error as BackupError { throw error } catch {
            throw .source("\(directory): \(error)")
        }
        guard identity.clusterUUID != nil else {
            throw .source("\(directory) does not know its cluster UUID yet (a joining node): back up another member")
        }
        var snapshot = SnapshotMetadata()
        var log: [LogEntry] = []
        var commit: LogIndex = 0
        do {
            var reader = try WALReader(directory: directory)
            while let item = try reader.next() {
                switch item.record {
                case .entry(let entry):
                    while let last = log.last, last.index >= entry.index { log.removeLast() }
                    log.append(entry)
                case .hardState(let state):
                    commit = state.commitIndex
                case .snapshot(let metadata, let resets):
                    if metadata.index >= snapshot.index { snapshot = metadata }
                    if resets { log.removeAll { $0.index <= metadata.index } }
                case .compact(let index, _):
                    log.removeAll { $0.index < index }
                case .segmentHeader:
                    break
                }
            }
        } catch {
            throw .damaged(file: directory, detail: "\(error)")
        }
        commit = max(commit, snapshot.index)
        var data: [UInt8] = []
        if snapshot.index > 0 && snapshotData {
            do {
                data = try ArchiveAccess.readSnapshot(directory: directory, index: snapshot.index, term: snapshot.term)
                    .data
            } catch { throw .damaged(file: directory, detail: "\(error)") }
        }
        let committed = log.filter { $0.index <= commit }
        let after = committed.filter { $0.index > snapshot.index }
        if let first = after.first, first.index != snapshot.index + 1 {
            throw .damaged(file: directory, detail: "the log after the snapshot at \(snapshot.index) starts at \(first.index)")
        }
        for (a, b) in zip(after, after.dropFirst()) where b.index != a.index + 1 {
            throw .damaged(file: directory, detail: "the log has a gap between \(a.index) and \(b.index)")
        }
        return CommittedHistory(identity: identity, snapshot: snapshot, entries: after,
                                entriesBeforeSnapshot: committed.filter { $0.index <= snapshot.index },
                                snapshotData: data)
    }

    /// When the node's snapshot is the state at the commit index (no committed entry
    /// after it) and its bytes were read: the key count its header records; else `nil`.
    var snapshotAtCommit: Int? {
        guard entries.isEmpty, snapshot.index > 0, let summary = KVSnapshotSummary(snapshotData),
              summary.appliedIndex == snapshot.index else { return nil }
        return summary.keyCount
    }

    /// The committed entries `from...through` (both inclusive), or `nil` when the WAL no
    /// longer holds all of them.
    public func entries(from: LogIndex, through: LogIndex) -> [LogEntry]? {
        if from > through { return [] }
        let all = entriesBeforeSnapshot + entries
        guard let first = all.first, first.index <= from, let last = all.last, last.index >= through else { return nil }
        let slice = all.filter { $0.index >= from && $0.index <= through }
        for (a, b) in zip(slice, slice.dropFirst()) where b.index != a.index + 1 { return nil }
        return slice.count == Int(through - from + 1) ? slice : nil
    }

    /// The term of the entry at `index`, when known.
    public func term(at index: LogIndex) -> Term? {
        if index == snapshot.index { return snapshot.term }
        if index == 0 { return 0 }
        return (entriesBeforeSnapshot + entries).last { $0.index == index }?.term
    }

    /// The state machine at the commit index, and the membership there.
    public func stateAtCommit(limits: StateMachine.Limits = StateMachine.Limits()) throws(BackupError)
        -> (machine: StateMachine, membership: ConfState) {
        // The live cluster's replica ID (aegis serve uses the cluster ID): sets and hashes
        // rebuilt here carry the same CRDT metadata, so the digest is the node's.
        var machine = StateMachine(limits: limits, replica: ReplicaID(identity.clusterID))
        if snapshot.index > 0 {
            do { try machine.restore(from: Snapshot(metadata: snapshot, data: snapshotData)) } catch {
                throw .damaged(file: identity.nodeID, detail: "the node's snapshot at \(snapshot.index): \(error)")
            }
        }
        var conf = snapshot.confState
        for entry in entries {
            machine.apply(entry)
            conf = Self.apply(entry, to: conf)
        }
        return (machine, conf)
    }

    /// The membership after `entry` (configuration changes only).
    static func apply(_ entry: LogEntry, to conf: ConfState) -> ConfState {
        guard entry.type == .configChange, let change = try? ConfChange(decoding: entry.data),
              let next = try? change.applied(to: conf) else { return conf }
        return next
    }
}
