import Crypto
import Foundation
public import AegisKV
public import AegisRaft
public import AegisStorage

/// What `verify` found.
public struct VerifyReport: Sendable {
    /// The backups read (the verified one's chain, full first).
    public var chain: [String]
    /// Whether only the stored checksums were checked.
    public var checksumsOnly: Bool
    /// Stored bytes read.
    public var bytesChecked: UInt64
    /// The restored state's position and digest (empty with `checksumsOnly`).
    public var position: LogPosition?
    public var digest: String?
    /// Entries replayed.
    public var entriesReplayed: Int
}

/// Where and as what a restore writes its data directory.
public struct RestoreOptions: Sendable {
    /// The data directory to create: it must not exist or be empty.
    public var dataDirectory: String
    /// The node ID of the restored (single-voter) cluster's first member.
    public var nodeID: String
    /// The new cluster's ID (default: the backup's).
    public var clusterID: String?
    /// The new cluster's UUID (default: a random one). Never the backup's: the restored
    /// cluster must not join the old one.
    public var clusterUUID: String?

    public init(dataDirectory: String, nodeID: String = "n1", clusterID: String? = nil, clusterUUID: String? = nil) {
        self.dataDirectory = dataDirectory
        self.nodeID = nodeID
        self.clusterID = clusterID
        self.clusterUUID = clusterUUID
    }
}

/// What a restore or point-in-time recovery did.
public struct RestoreReport: Sendable {
    /// The manifests read, full first.
    public var chain: [String]
    /// What was asked.
    public var target: RecoveryTarget
    /// The position restored to and its leader time.
    public var reached: LogPosition
    public var reachedTime: UInt64?
    /// The newest position the repository could restore to, and its leader time.
    public var lastRecoverable: LogPosition
    public var lastRecoverableTime: UInt64?
    /// Log entries replayed on top of the full backup.
    public var entriesReplayed: Int
    /// Keys in the restored state, and its digest.
    public var keyCount: Int
    public var digest: String
    /// Stored bytes read.
    public var bytesRead: UInt64
    /// The new cluster identity written into the data directory.
    public var clusterID: String
    public var clusterUUID: String
    /// Achieved RTO: wall time of the whole restore, in milliseconds.
    public var durationMillis: UInt64
    /// Achieved RPO in entries: for `.latest`, entries of the repository not restored
    /// (0); for an index or time target, the entries between the target and what was
    /// restored are none by construction, so this is `lastRecoverable - reached` (what the
    /// chosen point leaves out of what the repository holds).
    public var entriesAfterReached: UInt64 { lastRecoverable.index &- reached.index }
    /// Achieved RPO in time for `.latest`: `now - reachedTime` (the writes newer than
    /// the restored state that the repository does not hold), when the time is known.
    public var rpoMillis: UInt64?
}

extension BackupRepository {
    /// The chain of backup `id` (its full ancestor first).
    public func chain(of id: String) async throws(BackupError) -> [BackupManifest] {
        let (all, unreadable) = try await listBackups()
        let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        guard var current = byID[id] else {
            if let why = unreadable.first(where: { "\($0)".contains("/\(id)/") }) { throw why }
            throw .unreachable("no complete backup named \(id)")
        }
        var chain = [current]
        while let parent = current.parent {
            guard let p = byID[parent], chain.count <= all.count else {
                if let why = unreadable.first(where: { "\($0)".contains("/\(parent)/") }) { throw why }
                throw .unreachable("backup \(current.id) needs \(parent), which is missing or incomplete")
            }
            chain.insert(p, at: 0)
            current = p
        }
        return chain
    }

    /// Verifies backup `id`: restores its chain into a scratch state machine, replays its
    /// log to the recorded end and compares the state digest with the one recorded when it
    /// was taken (a recovery test). With `checksumsOnly`, only the stored files' sizes and
    /// SHA-256 are checked.
    public func verify(_ id: String, checksumsOnly: Bool = false,
                       limits: StateMachine.Limits = StateMachine.Limits()) async throws(BackupError) -> VerifyReport {
        let chain = try await chain(of: id)
        guard let base = chain.first, let last = chain.last else { throw .unreachable("empty chain") }
        let plan = RecoveryPlan(base: base, steps: Array(chain.dropFirst()), target: .index(last.end.index),
                                stopIndex: last.end.index, lastRecoverable: last.end,
                                lastRecoverableTime: last.leaderTimeLast)
        let bytes = try await preflight(plan)
        if checksumsOnly {
            return VerifyReport(chain: chain.map(\.id), checksumsOnly: true, bytesChecked: bytes, position: nil,
                                digest: nil, entriesReplayed: 0)
        }
        let state = try await replay(plan, limits: limits)
        let digest = stateDigest(state.machine)
        guard digest == last.digest else {
            throw .digestMismatch(backup: last.id, atIndex: last.end.index, expected: last.digest, actual: digest)
        }
        return VerifyReport(chain: chain.map(\.id), checksumsOnly: false, bytesChecked: bytes,
                            position: state.position, digest: digest, entriesReplayed: state.entriesReplayed)
    }

    /// Point-in-time recovery: plans the chain that reaches `target`, checks every file
    /// of it (preflight), restores and replays it in memory, and only then writes a new
    /// data directory for a single-voter cluster with a NEW cluster UUID. Nothing is
    /// written to `options.dataDirectory` if any step fails. Holds a restore lock on the
    /// repository meanwhile (a prune waits).
    public func restore(to target: RecoveryTarget, options: RestoreOptions, clusterUUID: String? = nil,
                        limits: StateMachine.Limits = StateMachine.Limits()) async throws(BackupError) -> RestoreReport {
        let started = DispatchTime.now().uptimeNanoseconds
        try Self.checkEmptyDestination(options.dataDirectory)
        let lock = try await RepositoryLock.acquire(.restore, repository: self)
        do {
            let report = try await restoreLocked(target: target, options: options, clusterUUID: clusterUUID,
                                                 limits: limits, started: started)
            await lock.release()
            return report
        } catch {
            await lock.release()
            throw error
        }
    }

    private func restoreLocked(target: RecoveryTarget, options: RestoreOptions, clusterUUID: String?,
                               limits: StateMachine.Limits, started: UInt64) async throws(BackupError) -> RestoreReport {
        let (backups, unreadableBackups) = try await listBackups()
        let (archive, unreadablePieces) = try await listArchive()
        // A damaged manifest is refused, not skipped: skipping it could silently restore less.
        if let damaged = (unreadableBackups + unreadablePieces).first { throw damaged }
        let plan = try RecoveryPlan.make(target: target, backups: backups, archive: archive, clusterUUID: clusterUUID)
        try await preflight(plan)
        let state = try await replay(plan, limits: limits)
        let newUUID = options.clusterUUID ?? UUID().uuidString
        guard newUUID.uppercased() != plan.base.clusterUUID.uppercased() else {
            throw .invalidArgument("the restored cluster needs a new UUID, not the backed-up cluster's \(newUUID)")
        }
        let clusterID = options.clusterID ?? plan.base.clusterID
        let digest = try Self.writeDataDirectory(state: state, options: options, clusterID: clusterID,
                                                 clusterUUID: newUUID)
        let elapsed = (DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        var rpo: UInt64?
        if case .latest = target, let time = state.leaderTime { rpo = now() > time ? now() - time : 0 }
        return RestoreReport(chain: plan.chain.map(\.id), target: target, reached: state.position,
                             reachedTime: state.leaderTime, lastRecoverable: plan.lastRecoverable,
                             lastRecoverableTime: plan.lastRecoverableTime, entriesReplayed: state.entriesReplayed,
                             keyCount: state.machine.count, digest: digest,
                             bytesRead: state.bytesRead, clusterID: clusterID, clusterUUID: newUUID,
                             durationMillis: elapsed, rpoMillis: rpo)
    }

    static func checkEmptyDestination(_ directory: String) throws(BackupError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        if !names.isEmpty {
            throw .invalidArgument("the data directory \(directory) is not empty; restore into a new directory")
        }
    }

    /// Writes the data directory next to its final place, then renames it there; returns
    /// the digest of the state written.
    static func writeDataDirectory(state: RestoredState, options: RestoreOptions, clusterID: String,
                                   clusterUUID: String) throws(BackupError) -> String {
        let final = options.dataDirectory
        let temporary = final + ".restoring-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let node = NodeID(options.nodeID)
        let conf = ConfState(voters: [node])
        do {
            let storage = try DiskStorage(directory: temporary, options: DiskStorageOptions(initialConf: conf))
            let metadata = SnapshotMetadata(index: state.position.index, term: state.position.term, confState: conf)
            let data = state.machine.snapshotData()
            let digest = hex(Crypto.SHA256.hash(data: data))
            try storage.applySnapshot(Snapshot(metadata: metadata, data: data))
            try storage.setHardState(RaftState(term: state.position.term, votedFor: nil,
                                               commitIndex: state.position.index))
            storage.close()
            try DataDirectoryIdentity(clusterID: clusterID, clusterUUID: clusterUUID, nodeID: options.nodeID,
                                      membership: .member).write(to: temporary)
            try checkEmptyDestination(final)
            if FileManager.default.fileExists(atPath: final) { try FileManager.default.removeItem(atPath: final) }
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
            return digest
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if let error = error as? BackupError { throw error }
            throw .target(operation: "write data directory", name: final, detail: "\(error)")
        }
    }
}
