import AegisBackup
import AegisServer
import ArgumentParser
import Foundation

/// Where the backup tools find the repository and the member to back up.
struct RepositoryOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The backup repository: a directory, or s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).", valueName: "path"))
    var repo: String = ".aegis/backups"
    @Option(help: "Compression of new files: none, gzip, lz4, zstd.") var compression: String = "zstd"
    @Option(help: "Compression level (default: the codec's).") var level: Int?
    @Flag(help: "Print JSON instead of text.") var json = false
    @Flag(help: "No progress reports on standard error.") var quiet = false

    func repository() throws -> BackupRepository {
        guard let codec = BackupCompression(rawValue: compression) else {
            throw ValidationError("--compression: '\(compression)' is not none, gzip, lz4 or zstd")
        }
        var repository = BackupRepository(target: try makeBackupTarget(repo),
                                          settings: BackupSettings(compression: codec, level: level))
        if !quiet {
            let printer = ProgressPrinter(json: json)
            repository.progress = { printer.report($0) }
        }
        return repository
    }

    /// Prints `value` as JSON (with --json) or `text`.
    func emit(_ value: some Encodable, _ text: @autoclosure () -> String) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
        } else {
            print(text())
        }
    }
}

/// Which member's data directory a backup reads.
struct MemberOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The member's data directory (on this machine).", valueName: "path"))
    var dataDir: String?
    @Option(help: ArgumentHelp("The member to back up, by node ID, in the `aegis dev` layout under --dev-root (default: a follower, so the leader is not loaded).", valueName: "node"))
    var from: String?
    @Option(help: "The `aegis dev` data folder.") var devRoot: String = DevDefaults.dataDirectory
    @Option(name: .long, help: ArgumentHelp("An admin address of the cluster, asked who leads (to pick a follower).", valueName: "host:port"))
    var admin: String = DevDefaults.adminAddress
    @OptionGroup var security: ToolSecurityOptions

    /// The data directory: --data-dir, or --from's in the dev layout, or a follower's.
    func resolve() async -> String {
        if let dataDir { return dataDir }
        if let from { return devRoot + "/" + from }
        // A follower: ask the cluster who leads; the first other dev node is used.
        var leader: String?
        if let (host, port) = try? parseAddress(admin),
           let response = try? await AdminHTTPClient.send(
               method: "GET", host: host, port: port, path: "/v1/cluster",
               headers: security.resolvedAdminToken.map { [("Authorization", "Bearer \($0)")] } ?? [], body: nil,
               tls: try? security.clientContext(), timeout: .seconds(5)),
           response.status == 200,
           let status = try? JSONDecoder().decode(ClusterStatusDocument.self, from: response.body) {
            leader = status.leader
        }
        let follower = DevDefaults.nodeIDs.first { $0 != leader && FileManager.default.fileExists(atPath: devRoot + "/" + $0) }
        return devRoot + "/" + (follower ?? DevDefaults.nodeIDs[1])
    }
}

/// `aegis backup`: take, list, verify, restore and prune backups.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Full, incremental and differential backups; verification by restore; retention.",
        discussion: """
            A repository (--repo, default ./.aegis/backups) holds backups/<id>/ folders, each a \
            manifest.json written last plus compressed files, and archive/ pieces of the \
            continuously archived log (`aegis serve --backup-repo`). Backups read a member's data \
            directory without stopping it (--data-dir, or --from <node> of `aegis dev`; a follower \
            by default). See `aegis recover` for point-in-time recovery.
            """,
        subcommands: [Create.self, List.self, Verify.self, Restore.self, Prune.self, Archive.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a backup of a member.")
        @Option(help: "full, incremental (since the previous backup) or differential (since the last full).")
        var kind: String = "full"
        @OptionGroup var member: MemberOptions
        @OptionGroup var options: RepositoryOptions

        func run() async throws {
            guard let kind = BackupKind(rawValue: kind), kind != .archive else {
                throw ValidationError("--kind: '\(self.kind)' is not full, incremental or differential")
            }
            let directory = await member.resolve()
            let started = Date()
            let history = try CommittedHistory.read(dataDirectory: directory)
            let manifest = try await options.repository().createBackup(kind, from: history)
            let seconds = Date().timeIntervalSince(started)
            options.emit(BackupSummary(manifest, seconds: seconds),
                         "backup \(manifest.id): \(kind.rawValue) of \(manifest.nodeID) (\(directory)) at index "
                            + "\(manifest.end.index), \(manifest.keyCount) keys, \(manifest.storedBytes) bytes stored, "
                            + String(format: "%.2f s", seconds))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the repository's backups and archive.")
        @OptionGroup var options: RepositoryOptions

        func run() async throws {
            let repository = try options.repository()
            let (backups, unreadable) = try await repository.listBackups()
            let (pieces, _) = try await repository.listArchive()
            if options.json {
                options.emit(ListDocument(backups: backups.map { BackupSummary($0) }, archivedThrough: pieces.last?.end.index,
                                          archivePieces: pieces.count, unreadable: unreadable.map { "\($0)" }), "")
                return
            }
            print("ID                       KIND          PARENT                   END        KEYS      BYTES")
            for b in backups {
                print([b.id.padding(toLength: 24, withPad: " ", startingAt: 0),
                       b.kind.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0),
                       (b.parent ?? "-").padding(toLength: 24, withPad: " ", startingAt: 0),
                       String(b.end.index).padding(toLength: 10, withPad: " ", startingAt: 0),
                       String(b.keyCount).padding(toLength: 9, withPad: " ", startingAt: 0), String(b.storedBytes)]
                    .joined(separator: " "))
            }
            print("archive: \(pieces.count) pieces" + (pieces.last.map { ", through index \($0.end.index)" } ?? ""))
            for error in unreadable { print("UNREADABLE: \(error)") }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into a scratch state machine, replay its log and compare the recorded digest.")
        @Argument(help: "The backup ID (default: every backup).") var id: String?
        @Flag(help: "Only check the stored files' sizes and SHA-256.") var checksumsOnly = false
        @OptionGroup var options: RepositoryOptions

        func run() async throws {
            let repository = try options.repository()
            var ids: [String] = []
            if let id { ids = [id] } else { ids = try await repository.listBackups().backups.map(\.id) }
            var failed = 0
            for id in ids {
                do {
                    let report = try await repository.verify(id, checksumsOnly: checksumsOnly)
                    options.emit(VerifyDocument(id: id, ok: true, error: nil, index: report.position?.index,
                                                digest: report.digest, bytes: report.bytesChecked),
                                 "ok  \(id)" + (report.position.map { " restored to index \($0.index), digest matches" }
                                    ?? " checksums match") + " (\(report.bytesChecked) bytes)")
                } catch {
                    failed += 1
                    options.emit(VerifyDocument(id: id, ok: false, error: "\(error)", index: nil, digest: nil, bytes: nil),
                                 "BAD \(id): \(error)")
                }
            }
            if failed > 0 { throw ExitCode(1) }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup (or a point in time) into a new data directory under a new cluster UUID.")
        @Argument(help: "The backup ID to restore exactly (default: see aegis recover's targets).") var id: String?
        @OptionGroup var recovery: RecoveryOptions

        func run() async throws {
            var target = try recovery.target()
            if let id {
                let manifest = try await recovery.options.repository().manifest(id)
                target = .index(manifest.end.index)
            }
            try await recovery.recover(target)
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete backups the retention policy no longer keeps (and what only they needed).")
        @Option(help: "Keep this many newest full backups with everything they need.") var keepFull: Int = 2
        @Option(help: "Also keep full backups newer than this (e.g. 7d, 12h, 30m).") var keepWithin: String?
        @Flag(help: "List what would be deleted; delete nothing.") var dryRun = false
        @OptionGroup var options: RepositoryOptions

        func run() async throws {
            let window = try keepWithin.map { text -> UInt64 in
                guard let ms = parseDurationMillis(text) else { throw ValidationError("--keep-within: '\(text)' is not like 7d, 12h, 30m, 90s") }
                return ms
            }
            let report = try await options.repository().prune(policy: RetentionPolicy(keepFull: keepFull, keepWithinMillis: window),
                                                              dryRun: dryRun)
            options.emit(PruneDocument(report),
                         (dryRun ? "would delete" : "deleted") + " \(report.backups.count) backups "
                            + "\(report.backups) and \(report.archivePieces.count) archive pieces (\(report.bytes) bytes); "
                            + "kept \(report.kept.count)")
        }
    }

    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Archive a member's committed log continuously (what `aegis serve --backup-repo` runs).")
        @Option(help: "Seconds between passes.") var interval: Double = 1
        @Flag(help: "One pass, then exit.") var once = false
        @OptionGroup var member: MemberOptions
        @OptionGroup var options: RepositoryOptions

        func run() async throws {
            var archiver = WALArchiver(repository: try options.repository(), dataDirectory: await member.resolve())
            repeat {
                let status = try await archiver.archiveOnce()
                options.emit(status, "archived through \(status.archived.index) (commit \(status.committed), "
                    + "\(status.piecesWritten) pieces, \(status.bytesWritten) bytes)")
                if !once { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
            } while !once
        }
    }
}

/// Parses `7d`, `12h`, `30m`, `90s` or `1500ms` into milliseconds.
func parseDurationMillis(_ text: String) -> UInt64? {
    let units: [(String, UInt64)] = [("ms", 1), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        guard let n = Double(text.dropLast(suffix.count)), n >= 0 else { return nil }
        return UInt64(n * Double(factor))
    }
    return nil
}

/// One backup, as `list`/`create` print it.
struct BackupSummary: Encodable {
    var id: String, kind: String, parent: String?, clusterUUID: String, node: String
    var startIndex: UInt64, endIndex: UInt64, keys: Int, storedBytes: UInt64, rawBytes: UInt64
    var digest: String, createdAt: UInt64, compression: String?, seconds: Double?

    init(_ m: BackupManifest, seconds: Double? = nil) {
        id = m.id; kind = m.kind.rawValue; parent = m.parent; clusterUUID = m.clusterUUID; node = m.nodeID
        startIndex = m.start.index; endIndex = m.end.index; keys = m.keyCount; storedBytes = m.storedBytes
        rawBytes = m.files.reduce(0) { $0 + $1.rawSize }; digest = m.digest; createdAt = m.createdAt
        compression = m.files.first?.compression.rawValue
        self.seconds = seconds
    }
}

struct ListDocument: Encodable {
    var backups: [BackupSummary]
    var archivedThrough: UInt64?
    var archivePieces: Int
    var unreadable: [String]
}

struct VerifyDocument: Encodable {
    var id: String, ok: Bool, error: String?, index: UInt64?, digest: String?, bytes: UInt64?
}

struct PruneDocument: Encodable {
    var backups: [String], archivePieces: [String], kept: [String], bytes: UInt64, dryRun: Bool
    init(_ r: PruneReport) {
        backups = r.backups; archivePieces = r.archivePieces; kept = r.kept; bytes = r.bytes; dryRun = r.dryRun
    }
}
