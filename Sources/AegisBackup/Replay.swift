import AegisCRDT
public import AegisKV
public import AegisRaft
import AegisStorage

/// The state a chain of backups restores to.
public struct RestoredState: Sendable {
    /// The state machine after the last replayed entry.
    public var machine: StateMachine
    /// The last entry applied (index and term).
    public var position: LogPosition
    /// Its leader time, when known.
    public var leaderTime: UInt64?
    /// Entries replayed from log files.
    public var entriesReplayed: Int
    /// Stored bytes read.
    public var bytesRead: UInt64
    /// The manifests whose recorded digest was compared (and matched).
    public var digestsChecked: [String]
}

extension BackupRepository {
    /// Checks, before anything is written, that every file of the plan exists and has the
    /// stored size and SHA-256 its manifest records. Returns the bytes checked.
    @discardableResult
    public func preflight(_ plan: RecoveryPlan) async throws(BackupError) -> UInt64 {
        var bytes: UInt64 = 0
        let counter = ProgressCounter("preflight", total: plan.storedBytes, report: progress)
        for manifest in plan.chain {
            for file in manifest.files {
                try await StoredFileReader.checkStored(file, folder: Self.folder(of: manifest), target: target,
                                                       chunkSize: settings.chunkSize, progress: counter)
                bytes += file.size
            }
        }
        return bytes
    }

    /// Restores the plan's full backup into a state machine and replays the log of its
    /// steps up to the plan's target, checking every file's checksums and every
    /// backup's recorded digest where replay passes its end.
    public func replay(_ plan: RecoveryPlan, limits: StateMachine.Limits = StateMachine.Limits())
        async throws(BackupError) -> RestoredState {
        let base = plan.base
        let baseFolder = Self.folder(of: base)
        guard let stateFile = base.files.first(where: { $0.role == .state }), let snapshot = base.snapshot else {
            throw .damaged(file: baseFolder + "/" + BackupManifest.fileName, detail: "a full backup without a state file")
        }
        var reader = KVSnapshotReader(limits: limits)
        let counter = ProgressCounter("restore", total: plan.storedBytes, report: progress)
        try await StoredFileReader.read(stateFile, folder: baseFolder, target: target, chunkSize: settings.chunkSize,
                                        progress: counter) {
            (piece) throws(BackupError) in
            do { try reader.feed(piece) } catch {
                throw .damaged(file: baseFolder + "/" + stateFile.name, detail: "\(error)")
            }
        }
        var machine = StateMachine(limits: limits, replica: ReplicaID(base.clusterID))
        do { try machine.restore(from: reader) } catch {
            throw .damaged(file: baseFolder + "/" + stateFile.name, detail: "\(error)")
        }
        guard machine.appliedIndex == snapshot.index else {
            throw .damaged(file: baseFolder + "/" + stateFile.name,
                           detail: "holds the state at index \(machine.appliedIndex), the manifest says \(snapshot.index)")
        }
        var state = RestoredState(machine: machine, position: snapshot, leaderTime: base.leaderTimeLast,
                                  entriesReplayed: 0, bytesRead: stateFile.size, digestsChecked: [base.id])
        var stopped = false
        for step in plan.steps where !stopped {
            let folder = Self.folder(of: step)
            for file in step.files where file.role == .log {
                state.bytesRead += file.size
                var pending: [UInt8] = []
                let label = folder + "/" + file.name
                try await StoredFileReader.read(file, folder: folder, target: target, chunkSize: settings.chunkSize,
                                                progress: counter) {
                    (piece) throws(BackupError) in
                    pending.append(contentsOf: piece)
                    let decoded: (entries: [LogEntry], consumed: Int)
                    do { decoded = try ArchiveAccess.decodeFramedPrefix(pending, name: label) } catch {
                        throw .damaged(file: label, detail: "\(error)")
                    }
                    pending.removeFirst(decoded.consumed)
                    for entry in decoded.entries where !stopped {
                        stopped = try Self.apply(entry, to: &state, plan: plan, file: label)
                    }
                }
                if !pending.isEmpty {
                    throw .damaged(file: label, detail: "the log ends inside a record (\(pending.count) bytes left)")
                }
            }
            if !stopped, state.position == step.end, !step.digest.isEmpty {
                let actual = stateDigest(state.machine)
                guard actual == step.digest else {
                    throw .digestMismatch(backup: step.id, atIndex: step.end.index, expected: step.digest, actual: actual)
                }
                state.digestsChecked.append(step.id)
            }
        }
        if case .index(let n) = plan.target, state.position.index != n {
            throw .unreachable("replay reached index \(state.position.index), not \(n)")
        }
        return state
    }

    /// Applies one replayed entry; returns `true` when replay must stop before it.
    private static func apply(_ entry: LogEntry, to state: inout RestoredState, plan: RecoveryPlan,
                              file: String) throws(BackupError) -> Bool {
        let position = state.position
        if entry.index <= position.index {
            if entry.index == position.index && entry.term != position.term {
                throw .foreign(file: file, detail: "entry \(entry.index) has term \(entry.term), but the chain before "
                    + "it has term \(position.term) there: the piece is from another history")
            }
            return false  // already applied (pieces may overlap)
        }
        guard entry.index == position.index + 1 else {
            throw .damaged(file: file, detail: "entry \(entry.index) follows \(position.index): a gap in the log")
        }
        guard entry.term >= position.term else {
            throw .foreign(file: file, detail: "entry \(entry.index) has term \(entry.term) after term \(position.term)")
        }
        if entry.index > plan.stopIndex { return true }
        if case .time(let t) = plan.target, entry.timestamp > t { return true }
        state.machine.apply(entry)
        state.position = LogPosition(index: entry.index, term: entry.term)
        state.leaderTime = entry.timestamp
        state.entriesReplayed += 1
        return false
    }
}
