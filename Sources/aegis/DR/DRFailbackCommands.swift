import AegisKV
import ArgumentParser
import Foundation

extension DRCommand {
    /// `aegis dr rejoin`: failback of a replaced primary (DRRejoin.swift).
    struct Rejoin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a primary that a failover replaced the standby of the new primary (failback, step 1).",
            discussion: """
            The new primary's cursor for the old one is the last of the old primary's log it received. The old \
            primary fences itself at the new epoch (if it is not fenced yet), writes the client writes it \
            committed after that point (its divergent tail, lost by the failover) to a side file in its \
            leader's data directory (read it with `aegis dr divergent FILE`), and becomes a standby that is \
            re-seeded from the new primary's snapshot, which discards that tail; it then follows the new \
            primary's stream. Step 2: `aegis dr switchover --primary NEW --standby OLD` moves the primary back \
            with no loss.
            """)
        @Option(help: "The old (replaced) primary's admin addresses.") var oldPrimary: String
        @Option(help: "The new primary's admin addresses.") var primary: String
        @Option(help: "Seconds to wait for the re-seed to complete (0: do not wait; default 60).") var waitSeconds: Int = 60
        @OptionGroup var security: ToolSecurityOptions

        func run() async throws {
            let tool = DRTool(security: security)
            let new = try await tool.document(primary)
            let old = try await tool.document(oldPrimary)
            guard new.role == "primary" else { throw ToolError("\(new.clusterID) is \(new.role), not the primary") }
            guard old.clusterID != new.clusterID else { throw ToolError("both address lists name cluster \(new.clusterID)") }
            let have = new.cursors.first { $0.source == old.clusterID }?.lastIndex ?? 0
            let path = "/v1/dr/rejoin?epoch=\(new.epoch)&primary=\(escape(new.clientAddresses))"
                + "&primary-admin=\(escape(primary))&source=\(escape(new.clusterID))&have=\(have)"
            let (report, _) = try await tool.post(oldPrimary, path, as: RejoinReport.self)
            let compacted = report.compactedFrom.map { " (entries \($0)...\(report.compactedThrough ?? $0) were compacted: not listed)" } ?? ""
            print("\(report.cluster) fenced at epoch \(report.epoch); \(new.clusterID) has its log through \(have), "
                + "its tail ends at \(report.commitIndex) (where it was fenced, or its commit)")
            print("divergent tail: \(report.divergentWrites) writes in entries \(have + 1)...\(report.commitIndex)\(compacted), "
                + "saved in \(report.sideFile) (sha256 \(report.sha256)); read it with `aegis dr divergent FILE`")
            print("\(report.cluster) is now a standby of \(new.clusterID), re-seeded from its snapshot (entry \(report.index))")
            guard waitSeconds > 0 else { return }
            let deadline = ContinuousClock.now + .seconds(waitSeconds)
            while ContinuousClock.now < deadline {
                if let doc = try? await tool.document(oldPrimary), doc.isLeader, doc.pendingSeed == nil,
                   doc.cursors.contains(where: { $0.source == new.clusterID }) {
                    print("re-seeded: \(report.cluster) follows \(new.clusterID); `aegis dr switchover --primary \(primary) --standby \(oldPrimary)` moves the primary back")
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw ToolError("the re-seed did not complete within \(waitSeconds) s: see `aegis dr status`")
        }
    }

    /// `aegis dr divergent FILE`: prints a side file `aegis dr rejoin` wrote.
    struct Divergent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the divergent tail a failback set aside (a side file of `aegis dr rejoin`).",
            discussion: "One line per write: the old primary's log index, its HLC time (ms and logical), the command.")
        @Argument(help: "The side file.") var file: String
        @Flag(help: "Print JSON: the header, the records' SHA-256 and the writes.") var json = false

        struct Write: Encodable {
            var index: UInt64
            var physicalMillis: UInt64
            var logical: UInt32
            var command: String
        }

        struct Output: Encodable {
            var header: DivergentHeader
            var sha256: String
            var writes: [Write]
        }

        func run() throws {
            let (header, batches, sha) = try DivergentFile.read(file)
            let writes = batches.flatMap(\.changes).map {
                Write(index: $0.sourceIndex, physicalMillis: $0.timestamp.physical, logical: $0.timestamp.logical,
                      command: Self.describe($0.command))
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(Output(header: header, sha256: sha, writes: writes)), as: UTF8.self))
                return
            }
            print("cluster \(header.cluster), replaced by \(header.newPrimary) at epoch \(header.epoch): "
                + "entries \(header.newPrimaryHas + 1)...\(header.commitIndex) never reached it")
            if let from = header.compactedFrom {
                print("entries \(from)...\(header.compactedThrough ?? from) were compacted before the rejoin: not listed")
            }
            print("\(writes.count) writes, records sha256 \(sha)")
            for w in writes { print("\(w.index)\t\(w.physicalMillis).\(w.logical)\t\(w.command)") }
        }

        /// A command as text: its type and keys, and a set's value (printable bytes; others as \xNN).
        static func describe(_ command: Command) -> String {
            func text(_ bytes: [UInt8]) -> String {
                bytes.prefix(256).map { (32 ..< 127).contains($0) && $0 != 92 ? String(UnicodeScalar($0)) : String(format: "\\x%02x", $0) }
                    .joined() + (bytes.count > 256 ? "…" : "")
            }
            switch command {
            case .set(let key, let value): return "set \(text(Array(key.bytes))) \(text(value))"
            case .session(_, let inner): return describe(inner)
            default: return "\(command.type) " + command.keys.map { text(Array($0.bytes)) }.joined(separator: " ")
            }
        }
    }
}
