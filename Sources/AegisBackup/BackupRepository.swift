import AegisCRDT
import Foundation
public import AegisKV
public import AegisRaft
import AegisStorage

/// A backup repository on a target: backups (`backups/<id>/`), archived log pieces
/// (`archive/<first>-<last>/`) and locks (`locks/`). See the "Repository format" article.
public struct BackupRepository: Sendable {
    /// Where the objects are.
    public let target: any BackupTarget
    /// Codec and chunk size of new files; chunk size of reads.
    public var settings: BackupSettings
    /// Milliseconds since 1970 (injected by tests).
    public var now: @Sendable () -> UInt64
    /// Called as bytes are written or read (progress bars); `nil`: no reports.
    public var progress: (@Sendable (BackupProgress) -> Void)?

    public init(target: any BackupTarget, settings: BackupSettings = BackupSettings(),
                now: @escaping @Sendable () -> UInt64 = BackupRepository.wallClockMillis) {
        self.target = target
        self.settings = settings
        self.now = now
    }

    /// The system clock in milliseconds since 1970.
    public static let wallClockMillis: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    static let backupsFolder = "backups"
    static let archiveFolder = "archive"

    /// The folder of a manifest.
    static func folder(of manifest: BackupManifest) -> String {
        (manifest.kind == .archive ? archiveFolder : backupsFolder) + "/" + manifest.id
    }

    // MARK: Listing

    /// Every complete backup (its manifest present and readable), oldest first, and the
    /// manifests that could not be read (with why).
    public func listBackups() async throws(BackupError) -> (backups: [BackupManifest], unreadable: [BackupError]) {
        try await manifests(in: Self.backupsFolder)
    }

    /// Every archived log piece, by index.
    public func listArchive() async throws(BackupError) -> (pieces: [BackupManifest], unreadable: [BackupError]) {
        let found = try await manifests(in: Self.archiveFolder)
        return (found.backups.sorted { $0.end.index < $1.end.index }, found.unreadable)
    }

    private func manifests(in folder: String) async throws(BackupError) -> (backups: [BackupManifest], unreadable: [BackupError]) {
        var result: [BackupManifest] = []
        var unreadable: [BackupError] = []
        for name in try await target.list(prefix: folder + "/") where name.hasSuffix("/" + BackupManifest.fileName) {
            do throws(BackupError) {
                let manifest = try BackupManifest.decode(try await target.readAll(name), file: name)
                let expectedFolder = (name as NSString).deletingLastPathComponent
                guard Self.folder(of: manifest) == expectedFolder else {
                    throw BackupError.foreign(file: name, detail: "the manifest names backup \(manifest.id), not its folder")
                }
                result.append(manifest)
            } catch {
                unreadable.append(error)
            }
        }
        return (result.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }, unreadable)
    }

    /// The manifest of backup `id`.
    public func manifest(_ id: String) async throws(BackupError) -> BackupManifest {
        let name = Self.backupsFolder + "/" + id + "/" + BackupManifest.fileName
        return try BackupManifest.decode(try await target.readAll(name), file: name)
    }

    // MARK: Taking backups

    /// Takes a backup of `kind` from the committed history of a data directory.
    ///
    /// Full: the state machine at the directory's commit index. Incremental: the
    /// committed log since the newest backup of the same cluster. Differential: since
    /// the newest full backup. The files are written first, the manifest last.
    public func createBackup(_ kind: BackupKind, from history: CommittedHistory,
                             limits: StateMachine.Limits = StateMachine.Limits()) async throws(BackupError) -> BackupManifest {
        guard kind != .archive else { throw .invalidArgument("archive pieces are written by the archiver") }
        guard let uuid = history.identity.clusterUUID else { throw .source("the data directory has no cluster UUID") }
        let existing = try await listBackups().backups.filter { $0.clusterUUID == uuid }
        let createdAt = now()
        let id = Self.makeID(createdAt: createdAt, kind: kind, existing: Set(existing.map(\.id)))
        let folder = Self.backupsFolder + "/" + id
        // When the node's own snapshot is at the commit index, its bytes are the canonical
        // snapshot of the state there (the format is canonical): they are stored as they
        // are, without rebuilding the state. Otherwise the state is rebuilt.
        let snapshotIsCommit = kind == .full ? history.snapshotAtCommit : nil
        let (machine, conf) = snapshotIsCommit == nil ? try history.stateAtCommit(limits: limits)
            : (StateMachine(limits: limits, replica: ReplicaID(history.identity.clusterID)), history.snapshot.confState)
        let commit = history.commit
        var manifest = BackupManifest(
            format: BackupManifest.formatVersion, id: id, kind: kind, clusterID: history.identity.clusterID,
            clusterUUID: uuid, nodeID: history.identity.nodeID, parent: nil, snapshot: nil, membership: nil,
            logFirst: nil, logLast: nil, start: LogPosition(index: 0, term: 0), end: commit,
            leaderTimeFirst: nil, leaderTimeLast: nil, digest: "", keyCount: snapshotIsCommit ?? machine.count,
            createdAt: createdAt, files: [])
        let counter = ProgressCounter("backup", total: nil, report: progress)
        if kind == .full {
            let writer = try await StoredFileWriter(target: target, folder: folder,
                                                    name: "state.akvs" + settings.compression.fileExtension,
                                                    role: .state, settings: settings, progress: counter)
            do {
                if snapshotIsCommit != nil {
                    var start = 0
                    let data = history.snapshotData
                    while start < data.count {
                        let end = min(data.count, start + settings.chunkSize)
                        try await writer.write(Array(data[start..<end]))
                        start = end
                    }
                } else {
                    for chunk in machine.snapshotChunks(chunkSize: settings.chunkSize) { try await writer.write(chunk) }
                }
                let file = try await writer.finish()
                manifest.files = [file]
                // The digest is the SHA-256 of the canonical snapshot bytes (StateMachine.digest()).
                manifest.digest = file.rawSHA256
            } catch {
                await writer.abort()
                throw error
            }
            manifest.snapshot = commit
            manifest.membership = BackupMembership(conf)
            let time = history.entries(from: commit.index, through: commit.index)?.first?.timestamp
            manifest.leaderTimeFirst = time
            manifest.leaderTimeLast = time
        } else {
            let parent = kind == .incremental ? existing.last : existing.last { $0.kind == .full }
            guard let parent else {
                throw .unreachable("a \(kind.rawValue) backup needs a full backup of cluster \(uuid) first")
            }
            guard parent.end.index <= commit.index else {
                throw .source("this member's commit index \(commit.index) is behind the parent backup \(parent.id) "
                    + "(which ends at \(parent.end.index)); take it from an up-to-date member")
            }
            if let term = history.term(at: parent.end.index), term != parent.end.term {
                throw .source("the member's entry \(parent.end.index) has term \(term) but the parent backup "
                    + "\(parent.id) recorded term \(parent.end.term): not the same history")
            }
            guard let entries = history.entries(from: parent.end.index + 1, through: commit.index) else {
                throw .source("the member no longer holds the log from index \(parent.end.index + 1) (compacted "
                    + "after a snapshot); take a full backup")
            }
            manifest.parent = parent.id
            manifest.start = parent.end
            if !entries.isEmpty {
                manifest.files = [try await writeLog(entries, folder: folder, progress: counter)]
                manifest.logFirst = entries.first?.index
                manifest.logLast = entries.last?.index
                manifest.leaderTimeFirst = entries.first?.timestamp
                manifest.leaderTimeLast = entries.last?.timestamp
            }
            manifest.digest = stateDigest(machine)
        }
        try manifest.validate(file: folder)
        try await target.write(folder + "/" + BackupManifest.fileName, try manifest.encoded())
        return manifest
    }

    /// Writes `entries` as one log file of `folder`.
    func writeLog(_ entries: [LogEntry], folder: String, progress: ProgressCounter? = nil) async throws(BackupError) -> BackupFile {
        let first = entries.first?.index ?? 0, last = entries.last?.index ?? 0
        let name = "log-\(Self.hex16(first))-\(Self.hex16(last)).awal" + settings.compression.fileExtension
        let writer = try await StoredFileWriter(target: target, folder: folder, name: name, role: .log,
                                                settings: settings, progress: progress)
        do {
            var buffer: [UInt8] = []
            buffer.reserveCapacity(settings.chunkSize + 4096)
            for entry in entries {
                ArchiveAccess.appendFramedEntry(entry, to: &buffer)
                if buffer.count >= settings.chunkSize {
                    try await writer.write(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            if !buffer.isEmpty { try await writer.write(buffer) }
            return try await writer.finish()
        } catch {
            await writer.abort()
            throw error
        }
    }

    static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    /// `YYYYMMDD-HHMMSS-mmm` (UTC) and the kind's letter; a counter when taken.
    static func makeID(createdAt: UInt64, kind: BackupKind, existing: Set<String>) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let date = Date(timeIntervalSince1970: Double(createdAt) / 1000)
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ v: Int?, _ n: Int) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let letter: String
        switch kind {
        case .full: letter = "F"
        case .incremental: letter = "I"
        case .differential: letter = "D"
        case .archive: letter = "A"
        }
        let base = pad(c.year, 4) + pad(c.month, 2) + pad(c.day, 2) + "-" + pad(c.hour, 2) + pad(c.minute, 2)
            + pad(c.second, 2) + "-" + pad(Int(createdAt % 1000), 3) + letter
        var id = base
        var n = 1
        while existing.contains(id) {
            id = base + "-\(n)"
            n += 1
        }
        return id
    }
}
