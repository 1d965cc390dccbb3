import AegisOperations
import AegisServer
import ArgumentParser
import Foundation

/// `aegis dr`: status, failover and switchover of a primary/standby pair.
struct DRCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dr",
        abstract: "Disaster recovery: a standby cluster fed by the primary's change stream.",
        discussion: """
        A standby is started with `aegis serve … --standby-of PRIMARY_ADMIN[,…] [--dr-lease 2s]`: it is read-only \
        (writes get -READONLY naming the primary) and pulls the primary's committed changes. Addresses are admin \
        (HTTP) addresses; give every node of a cluster, comma-separated: the tools ask each until the leader answers.

          aegis dr status --admin HOST:PORT
          aegis dr failover --standby S1,S2,S3 [--old-primary P1,P2,P3] [--force]
          aegis dr switchover --primary P1,P2,P3 --standby S1,S2,S3
          aegis dr rejoin --old-primary P1,P2,P3 --primary S1,S2,S3   (failback, then switchover)
          aegis dr divergent FILE                                      (the tail rejoin set aside)
          aegis dr run RUNBOOK.yaml [--dry-run] [--json]
          aegis dr drill --standby S1,S2,S3 --primary P1,P2,P3 --standby-data-dir DIR [--json]
        """,
        subcommands: [Status.self, Failover.self, Switchover.self, Rejoin.self, Divergent.self, DRRunCommand.self,
                      DRDrillCommand.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node's DR role, epoch, cursors and link lag.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let data = try await options.request("GET", "/v1/dr")
            if options.json {
                print(String(decoding: data, as: UTF8.self), terminator: "")
                return
            }
            let d = try JSONDecoder().decode(DRDocument.self, from: data)
            print("cluster \(d.clusterID), node \(d.nodeID)\(d.isLeader ? " (leader)" : ""): \(d.role), epoch \(d.epoch)")
            if !d.primary.isEmpty { print("primary: \(d.primary) (admin \(d.primaryAdmin))") }
            if d.leaseMillis > 0 {
                print("write lease: \(d.leaseMillis) ms" + (d.leaseRemainingMillis.map { ", \($0) ms left" } ?? ""))
            }
            for c in d.cursors {
                print("cursor \(c.source): applied through \(c.lastIndex) of \(c.sourceCommit) (epoch \(c.epoch))")
            }
            if let lag = d.lagEntries { print("lag: \(lag) entries") }
            if let l = d.link {
                print("link: \(l.lagEntries) entries, \(l.lagSeconds) s behind; last contact "
                    + (l.lastContactMillisAgo.map { "\($0) ms ago" } ?? "never")
                    + "; \(l.frames) frames, \(l.changes) changes, \(l.bytes) bytes, \(l.errors) errors"
                    + (l.lastError.map { "; last error: \($0)" } ?? "")
                    + (l.lastSeedIndex.map { "; re-seeded \(l.seeds ?? 0) times from the primary's snapshot, last at \($0)" } ?? ""))
            }
        }
    }

    struct Failover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote the standby (new epoch) and fence the old primary.",
            discussion: """
            Unplanned: the primary may be gone. The standby waits until the primary's write lease has surely \
            expired (the lease plus three election timeouts since it last asked for changes) unless --force, so \
            the old primary has stopped taking writes on its own. Writes the standby had not received are lost \
            (the RPO: `aegis dr status` shows the lag). The old primary, if reachable (--old-primary), is fenced \
            at the new epoch; if not, it fences itself when it next reaches the new primary (--dr-peer).
            """)
        @Option(help: "The standby cluster's admin addresses.") var standby: String
        @Option(help: "The old primary's admin addresses (fenced when reachable).") var oldPrimary: String?
        @Flag(help: "Do not wait out the old primary's write lease (split-brain risk if it still runs).") var force = false
        @OptionGroup var security: ToolSecurityOptions

        func run() async throws {
            let tool = DRTool(security: security)
            let started = ContinuousClock.now
            let (promoted, at) = try await tool.post(standby, "/v1/dr/promote" + (force ? "?force=1" : ""))
            print("promoted \(promoted.cluster) at \(at): epoch \(promoted.epoch), index \(promoted.index) (waited \(promoted.waitedMillis) ms for the lease) in \(ContinuousClock.now - started)")
            guard let oldPrimary else { return }
            let standbyDoc = try await tool.document(standby)
            do {
                let (fenced, _) = try await tool.post(oldPrimary, "/v1/dr/fence?epoch=\(promoted.epoch)"
                    + "&primary=\(escape(standbyDoc.clientAddresses))&primary-admin=\(escape(standby))")
                print("fenced the old primary \(fenced.cluster) at epoch \(fenced.epoch)")
            } catch {
                print("the old primary could not be fenced now (\(error)); it stops writing when its lease expires and fences itself when it reaches the new primary")
            }
        }
    }

    struct Switchover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Planned switchover with no loss: drain the primary into the standby, then swap their roles.",
            discussion: """
            1. fence the primary at its epoch (it stops taking writes; the fence is an entry in its log), \
            2. wait until the standby applied every entry up to the fence (RPO 0), 3. promote the standby \
            (epoch + 1), 4. make the old primary a standby of the new one, resuming after the promotion.
            """)
        @Option(help: "The primary cluster's admin addresses.") var primary: String
        @Option(help: "The standby cluster's admin addresses.") var standby: String
        @Option(help: "Seconds to wait for the drain (default 60).") var drainTimeout: Int = 60
        @OptionGroup var security: ToolSecurityOptions

        func run() async throws {
            let tool = DRTool(security: security)
            let started = ContinuousClock.now
            let p = try await tool.document(primary)
            let s = try await tool.document(standby)
            guard p.role == "primary", s.role == "standby" else {
                throw ToolError("expected a primary and a standby, found \(p.role) \(p.clusterID) and \(s.role) \(s.clusterID)")
            }
            let (fence, _) = try await tool.post(primary, "/v1/dr/fence?epoch=\(p.epoch)"
                + "&primary=\(escape(s.clientAddresses))&primary-admin=\(escape(standby))")
            print("fenced \(p.clusterID) at index \(fence.index): it takes no more writes")
            let deadline = ContinuousClock.now + .seconds(drainTimeout)
            while true {
                let doc = try await tool.document(standby)
                let applied = doc.cursors.first { $0.source == p.clusterID }?.lastIndex ?? 0
                if applied >= fence.index && doc.appliedIndex >= doc.commitIndex { break }
                guard ContinuousClock.now < deadline else {
                    throw ToolError("the standby applied \(applied) of \(fence.index) within \(drainTimeout) s; the primary stays fenced: rerun, or `aegis dr failover`")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            print("drained: \(s.clusterID) holds every entry of \(p.clusterID) through \(fence.index)")
            let (promoted, _) = try await tool.post(standby, "/v1/dr/promote?force=1")
            print("promoted \(s.clusterID): epoch \(promoted.epoch)")
            let (demoted, _) = try await tool.post(primary, "/v1/dr/demote?epoch=\(promoted.epoch)"
                + "&primary=\(escape(s.clientAddresses))&primary-admin=\(escape(standby))"
                + "&resume-source=\(escape(s.clusterID))&resume-index=\(promoted.index)")
            print("\(demoted.cluster) is now a standby of \(s.clusterID) (epoch \(demoted.epoch)); switchover took \(ContinuousClock.now - started), RPO 0")
        }
    }
}

/// Calls to a cluster given as a list of admin addresses: each is tried until one
/// answers (the leader: the others answer 409/421 or do not answer).
struct DRTool {
    var security: ToolSecurityOptions

    private var access: AdminAccess {
        get throws { AdminAccess(token: security.resolvedAdminToken, tls: try security.clientContext()) }
    }

    func post<Answer: Decodable>(_ addresses: String, _ path: String,
                                 as type: Answer.Type = DRTransitioned.self) async throws -> (Answer, String) {
        try await access.post(addresses, path, as: type)
    }

    /// The DR document of the cluster's leader (else of the first node that answers).
    func document(_ addresses: String) async throws -> DRDocument {
        try await access.drDocument(addresses)
    }
}

/// Percent-encodes a query parameter value (the DR tools' addresses).
func escape(_ text: String) -> String { percentEscaped(text) }
