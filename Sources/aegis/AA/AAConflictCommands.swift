import AegisKV
import ArgumentParser
import Foundation

// `aegis aa conflicts | resolve | audit | strategies`: the conflict-resolution admin API
// (AAConflictsAdmin.swift) from the command line, written as `aegis aa status` is.

extension AACommand {
    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the open manual conflicts (versions numbered for --pick).")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let data = try await options.request("GET", "/v1/aa/conflicts")
            if options.json { return print(String(decoding: data, as: UTF8.self), terminator: "") }
            let conflicts = try JSONDecoder().decode([AAConflictsAdmin.Conflict].self, from: data)
            if conflicts.isEmpty { print("no open conflicts") }
            for conflict in conflicts {
                print("conflict \(conflict.id): key \(conflict.key), detected at \(conflict.detectedAtMillis) ms")
                for (index, version) in conflict.versions.enumerated() {
                    print("  [\(index)] from \(version.origin) at \(version.physical).\(version.logical): \(version.display)")
                }
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve a manual conflict with a value or one of its versions (a replicated write).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The conflict's ID (see `aegis aa conflicts`).") var id: UInt64
        @Option(help: "The value the key takes.") var value: String?
        @Option(help: "The version to keep, by its index in `aegis aa conflicts`.") var pick: Int?

        func validate() throws {
            guard (value == nil) != (pick == nil) else { throw ValidationError("give exactly one of --value and --pick") }
        }

        func run() async throws {
            let data = try await options.request("POST", "/v1/aa/conflicts/\(id)/resolve",
                                                 body: AAConflictsAdmin.Resolve(value: value, pick: pick))
            if options.json { return print(String(decoding: data, as: UTF8.self), terminator: "") }
            let answer = try JSONDecoder().decode(AAConflictsAdmin.Resolved.self, from: data)
            print("conflict \(answer.resolved) of \(answer.key) resolved at log index \(answer.index)")
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the conflict audit trail, newest first.")
        @OptionGroup var options: AdminOptions
        @Option(help: "Only this key's entries.") var key: String?
        @Option(help: "At most this many entries (1...10000).") var limit = 20

        func run() async throws {
            var path = "/v1/aa/audit?limit=\(limit)"
            if let key { path += "&key=" + (key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key) }
            let data = try await options.request("GET", path)
            if options.json { return print(String(decoding: data, as: UTF8.self), terminator: "") }
            let entries = try JSONDecoder().decode([AAConflictsAdmin.AuditEntry].self, from: data)
            if entries.isEmpty { print("no audit entries") }
            for entry in entries {
                let winner = entry.winnerDeleted ? "(deleted)" : entry.winner.map { "\"\($0)\"" } ?? "base64:\(entry.winnerBase64 ?? "")"
                print("#\(entry.id) at \(entry.timeMillis) ms: key \(entry.key), rule \(entry.rule), winner \(winner)"
                    + (entry.detail.isEmpty ? "" : " (\(entry.detail))"))
                for version in entry.versions {
                    print("  from \(version.origin) at \(version.physical).\(version.logical): \(version.display)")
                }
            }
        }
    }

    struct Strategies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the conflict strategy table, or replace it with --set.")
        @OptionGroup var options: AdminOptions
        @Option(name: .customLong("set"), help: ArgumentHelp("A rule of the new table (repeat; replaces the whole table).", valueName: "PREFIX=STRATEGY[:ARGS]"))
        var rules: [String] = []
        @Option(help: "With --set: the most siblings AEGIS.SIBLINGS shows (1...64, default 8).") var maxSiblings: Int?
        @Option(help: "With --set: the most open manual conflicts (1...100000, default 1000).") var maxConflicts: Int?
        @Option(help: "With --set: the most audit entries kept (1...1000000, default 10000).") var auditMaxEntries: Int?
        @Option(help: "With --set: how long audit entries are kept, in ms (default 604800000: 7 days).") var auditMaxAgeMs: UInt64?

        func run() async throws {
            var wanted = AAConflictsAdmin.Strategies(ActiveActiveConflictSettings())
            wanted.rules = rules
            wanted.maxSiblings = maxSiblings ?? wanted.maxSiblings
            wanted.maxConflicts = maxConflicts ?? wanted.maxConflicts
            wanted.auditMaxEntries = auditMaxEntries ?? wanted.auditMaxEntries
            wanted.auditMaxAgeMillis = auditMaxAgeMs ?? wanted.auditMaxAgeMillis
            let data = rules.isEmpty ? try await options.request("GET", "/v1/aa/strategies")
                : try await options.request("PUT", "/v1/aa/strategies", body: wanted)
            if options.json { return print(String(decoding: data, as: UTF8.self), terminator: "") }
            let table = try JSONDecoder().decode(AAConflictsAdmin.Strategies.self, from: data)
            print(table.rules.isEmpty ? "no rules: every key is last writer wins" : table.rules.joined(separator: "\n"))
            print("max siblings \(table.maxSiblings ?? 0), max conflicts \(table.maxConflicts ?? 0), audit \(table.auditMaxEntries ?? 0) entries / \(table.auditMaxAgeMillis ?? 0) ms")
        }
    }
}
