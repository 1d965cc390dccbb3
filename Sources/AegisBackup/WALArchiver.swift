import Foundation
public import AegisRaft
import AegisStorage

/// How far continuous archiving is.
public struct ArchiveStatus: Sendable, Hashable, Codable {
    /// The last archived entry (the cursor).
    public var archived: LogPosition
    /// The member's commit index when last looked at.
    public var committed: LogIndex
    /// Committed entries not archived yet.
    public var lagEntries: UInt64 { committed > archived.index ? committed - archived.index : 0 }
    /// Milliseconds since the oldest unarchived entry was proposed (0 when none).
    public var lagMillis: UInt64
    /// Pieces and stored bytes written by this archiver.
    public var piecesWritten: Int
    public var bytesWritten: UInt64
    /// When the last piece was written (ms since 1970), if any.
    public var lastArchivedAt: UInt64?
}

/// Ships a member's committed log to the repository as it grows (like PostgreSQL's
/// `archive_command` / pgBackRest `archive-push`, or Litestream): each call of
/// `archiveOnce()` writes the committed entries after the cursor as archive pieces
/// (`archive/<first>-<last>/`, log file first, manifest last) and advances the cursor.
///
/// The cursor is the end of the newest piece in the repository (read when the archiver
/// starts), so archiving continues without gaps or duplicates after a restart, on
/// another member after a leadership change, or after a crash between a piece and the
/// local cursor file (`.archive-cursor` in the data directory, a cache of the position
/// for operators). With no piece yet it starts at the newest backup's end. The log is
/// the same on every member (Raft's log matching), so a follower archives it as well as
/// the leader, and only committed entries are shipped.
///
/// If the member compacted its log past the cursor before a pass shipped it (writes
/// faster than the interval allows, or archiving stopped for a while), the pass throws
/// `BackupError.archiveGap`: the entries are gone from this member. A new full backup
/// starts a new stretch (like a new Litestream generation): the next pass continues from
/// it, and point-in-time recovery works from it on (`BackupService` takes it at once).
public struct WALArchiver: Sendable {
    public let repository: BackupRepository
    public let dataDirectory: String
    /// The largest raw log bytes in one piece (default 16 MiB): bounds memory per piece.
    public var maxPieceBytes: Int
    /// The cursor file name inside the data directory.
    public static let cursorFileName = ".archive-cursor"

    private var cursor: LogPosition?
    private var status = ArchiveStatus(archived: LogPosition(index: 0, term: 0), committed: 0, lagMillis: 0,
                                       piecesWritten: 0, bytesWritten: 0, lastArchivedAt: nil)

    public init(repository: BackupRepository, dataDirectory: String, maxPieceBytes: Int = 16 << 20) {
        self.repository = repository
        self.dataDirectory = dataDirectory
        self.maxPieceBytes = max(4096, maxPieceBytes)
    }

    /// The status after the last call.
    public var currentStatus: ArchiveStatus { status }

    /// Archives what was committed since the cursor; returns the status.
    @discardableResult
    public mutating func archiveOnce() async throws(BackupError) -> ArchiveStatus {
        let history = try CommittedHistory.read(dataDirectory: dataDirectory, snapshotData: false)
        guard let uuid = history.identity.clusterUUID else { throw .source("the data directory has no cluster UUID") }
        let start: LogPosition
        if let cursor { start = cursor } else { start = try await initialCursor(uuid: uuid, history: history) }
        let commit = history.commit
        status.committed = commit.index
        status.archived = start
        if commit.index <= start.index {
            cursor = start
            status.lagMillis = 0
            return status
        }
        if let term = history.term(at: start.index), term != start.term {
            throw .source("the member's entry \(start.index) has term \(term), the archive's cursor term \(start.term): "
                + "not the same history")
        }
        guard let entries = history.entries(from: start.index + 1, through: commit.index) else {
            status.lagMillis = history.entries.first.map { lagSince($0.timestamp) } ?? 0
            cursor = nil  // the next pass starts again from the repository (a new full backup, if one was taken)
            throw .archiveGap("archive gap: the member no longer holds the log from index \(start.index + 1) (compacted); "
                + "take a full backup: archiving resumes from it")
        }
        status.lagMillis = entries.first.map { lagSince($0.timestamp) } ?? 0
        var position = start
        var piece: [LogEntry] = []
        var pieceBytes = 0
        for entry in entries {
            piece.append(entry)
            pieceBytes += entry.data.count + 40
            if pieceBytes >= maxPieceBytes {
                position = try await writePiece(piece, after: position, uuid: uuid, history: history)
                piece.removeAll()
                pieceBytes = 0
            }
        }
        if !piece.isEmpty { position = try await writePiece(piece, after: position, uuid: uuid, history: history) }
        status.lagMillis = 0
        return status
    }

    private func lagSince(_ timestamp: UInt64) -> UInt64 {
        let now = repository.now()
        return now > timestamp ? now - timestamp : 0
    }

    private mutating func initialCursor(uuid: String, history: CommittedHistory) async throws(BackupError) -> LogPosition {
        // The furthest of the newest piece and the newest backup: after a gap (see
        // `archiveOnce`) a new full backup is where archiving starts again.
        let piece = try await repository.listArchive().pieces.last(where: { $0.clusterUUID == uuid })?.end
        let backup = try await repository.listBackups().backups.filter({ $0.clusterUUID == uuid })
            .max(by: { $0.end.index < $1.end.index })?.end
        if let found = [piece, backup].compactMap({ $0 }).max() { return found }
        // Nothing yet: from the oldest entry the member holds.
        let first = (history.entriesBeforeSnapshot.first ?? history.entries.first)?.index ?? (history.snapshot.index + 1)
        let before = first - 1
        return LogPosition(index: before, term: history.term(at: before) ?? 0)
    }

    private mutating func writePiece(_ entries: [LogEntry], after start: LogPosition, uuid: String,
                                     history: CommittedHistory) async throws(BackupError) -> LogPosition {
        guard let first = entries.first, let last = entries.last else { return start }
        let id = BackupRepository.hex16(first.index) + "-" + BackupRepository.hex16(last.index)
        let folder = BackupRepository.archiveFolder + "/" + id
        let file = try await repository.writeLog(entries, folder: folder)
        let end = LogPosition(index: last.index, term: last.term)
        let manifest = BackupManifest(
            format: BackupManifest.formatVersion, id: id, kind: .archive, clusterID: history.identity.clusterID,
            clusterUUID: uuid, nodeID: history.identity.nodeID, parent: nil, snapshot: nil, membership: nil,
            logFirst: first.index, logLast: last.index, start: start, end: end, leaderTimeFirst: first.timestamp,
            leaderTimeLast: last.timestamp, digest: "", keyCount: 0, createdAt: repository.now(), files: [file])
        try manifest.validate(file: folder)
        try await repository.target.write(folder + "/" + BackupManifest.fileName, try manifest.encoded())
        cursor = end
        status.archived = end
        status.piecesWritten += 1
        status.bytesWritten += file.size
        status.lastArchivedAt = manifest.createdAt
        saveCursor(end)
        return end
    }

    /// Writes the cursor cache file (best effort: the repository is the truth).
    private func saveCursor(_ position: LogPosition) {
        let text = "\(position.index) \(position.term)\n"
        let path = dataDirectory + "/" + Self.cursorFileName
        try? Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
