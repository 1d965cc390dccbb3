public import AegisRaft

/// What a restore or point-in-time recovery aims at.
public enum RecoveryTarget: Sendable, Hashable, CustomStringConvertible {
    /// The newest entry the repository holds (backups and archived log).
    case latest
    /// Exactly the state after entry `index`.
    case index(LogIndex)
    /// The state after the last entry proposed at or before this time (ms since 1970,
    /// the proposing leader's clock): replay stops before the first entry stamped later.
    case time(UInt64)

    public var description: String {
        switch self {
        case .latest: return "latest"
        case .index(let i): return "index \(i)"
        case .time(let t): return "time \(t) ms"
        }
    }
}

/// The backups and archived log pieces a restore reads, in order.
public struct RecoveryPlan: Sendable {
    /// The full backup the restore starts from.
    public var base: BackupManifest
    /// The differentials, incrementals and archive pieces replayed after it, in order.
    public var steps: [BackupManifest]
    /// What was asked.
    public var target: RecoveryTarget
    /// The index replay stops at (for a time target: the last index the plan may reach).
    public var stopIndex: LogIndex
    /// The newest position the repository can restore to (for RPO).
    public var lastRecoverable: LogPosition
    /// The leader time of `lastRecoverable`, when known.
    public var lastRecoverableTime: UInt64?

    /// Every manifest read, base first.
    public var chain: [BackupManifest] { [base] + steps }
    /// The stored bytes of every file of the chain.
    public var storedBytes: UInt64 { chain.reduce(0) { $0 &+ $1.storedBytes } }
}

extension RecoveryPlan {
    /// Chooses the pieces that reach `target` from `backups` and `archive` (manifests of
    /// one repository). Reads nothing but the manifests.
    ///
    /// - Parameter clusterUUID: restrict to one cluster (default: the cluster of the
    ///   newest full backup).
    public static func make(target: RecoveryTarget, backups: [BackupManifest], archive: [BackupManifest],
                            clusterUUID: String? = nil) throws(BackupError) -> RecoveryPlan {
        let fulls = backups.filter { $0.kind == .full }
        guard let uuid = clusterUUID ?? fulls.max(by: { $0.end.index < $1.end.index })?.clusterUUID else {
            throw .unreachable("the repository holds no full backup")
        }
        let mine = backups.filter { $0.clusterUUID == uuid }
        let byID = Dictionary(mine.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        /// The chain from a full backup to `backup` through parent links, or nil when broken.
        func chain(to backup: BackupManifest) -> [BackupManifest]? {
            var result = [backup]
            var current = backup
            while let parentID = current.parent {
                guard let parent = byID[parentID], parent.end.index <= current.end.index,
                      result.count <= mine.count else { return nil }
                result.insert(parent, at: 0)
                current = parent
            }
            return current.kind == .full ? result : nil
        }
        func usable(_ b: BackupManifest) -> Bool {
            switch target {
            case .latest: return true
            case .index(let n): return b.end.index <= n
            case .time(let t): return (b.leaderTimeLast ?? b.createdAt) <= t
            }
        }
        let candidates = mine.filter(usable).compactMap(chain(to:)).sorted { a, b in
            // The furthest state; among equals the shortest chain (fewest files to read).
            (a.last?.end.index ?? 0, -a.count) < (b.last?.end.index ?? 0, -b.count)
        }
        guard let best = candidates.last, let base = best.first else {
            throw .unreachable("no complete chain (a full backup and every parent) of cluster \(uuid) "
                + "is at or before \(target)")
        }
        var steps = Array(best.dropFirst())
        var position = best.last?.end ?? base.end
        var positionTime = best.last?.leaderTimeLast ?? base.leaderTimeLast
        // Extend with the log of later incrementals, differentials and archive pieces.
        let pieces = (mine.filter { $0.kind != .full && $0.logFirst != nil } + archive.filter { $0.clusterUUID == uuid })
        let limit: LogIndex
        switch target {
        case .index(let n): limit = n
        case .latest, .time: limit = LogIndex.max
        }
        while position.index < limit {
            if case .time(let t) = target, let time = positionTime, time > t { break }
            let next = pieces.filter { piece in
                piece.start.index <= position.index && piece.end.index > position.index
                    && (piece.start.index != position.index || piece.start.term == position.term)
                    && (piece.leaderTimeFirst.map { time in
                        if case .time(let t) = target { return time <= t || piece.start.index == position.index }
                        return true
                    } ?? true)
            }.max { $0.end.index < $1.end.index }
            guard let next else { break }
            steps.append(next)
            position = next.end
            positionTime = next.leaderTimeLast
        }
        // The newest position any chain reaches (for the reported RPO).
        var latest = position, latestTime = positionTime
        while let next = pieces.filter({ $0.start.index <= latest.index && $0.end.index > latest.index })
            .max(by: { $0.end.index < $1.end.index }) {
            latest = next.end
            latestTime = next.leaderTimeLast
        }
        let stop: LogIndex
        switch target {
        case .index(let n):
            guard position.index >= n else {
                throw .unreachable("the repository reaches index \(position.index) of cluster \(uuid) "
                    + "(the archived log has a gap or ends there), not \(n)")
            }
            stop = n
        case .latest, .time:
            stop = position.index
        }
        return RecoveryPlan(base: base, steps: steps, target: target, stopIndex: stop,
                            lastRecoverable: latest, lastRecoverableTime: latestTime)
    }
}
