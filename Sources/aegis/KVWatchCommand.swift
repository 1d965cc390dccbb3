import AegisServer
import ArgumentParser
import Foundation

extension KVCommand {
    /// `aegis kv watch PREFIX`: prints the committed changes of a prefix as they come.
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every committed change of the keys under a prefix (AEGIS.WATCH).",
            discussion: """
            One line per change: log index, event (set, del, incrby, expired, …), key and, for a set, an append or an \
            increment, what it wrote. --from starts at a log index (changes already made are printed first); without \
            it, at the node's commit index. Any node serves a watch. To continue after an interruption, watch again \
            --from the last index printed plus one (or the index of a `progress` line plus one, with --progress). \
            Stops after --count changes or --seconds, else at Ctrl-C.

            Examples:
              aegis kv watch config: --from 1
              aegis kv watch '' --count 10 --json
            """)

        @Argument(help: "The key prefix ('' for every key).") var prefix: String
        @Option(help: "The first log index to report (0 and 1: from the beginning the log holds).") var from: UInt64?
        @Option(help: "Stop after this many changes.") var count: Int?
        @Option(help: "Stop after this many seconds.") var seconds: Double?
        @Flag(help: "Also print the progress messages (the index every change up to has been examined).") var progress = false
        @Flag(help: "One JSON object per line.") var json = false
        @OptionGroup var connection: RESPConnectionOptions

        func validate() throws {
            if let count, count < 1 { throw ValidationError("--count must be at least 1") }
            if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be positive") }
        }

        func run() async throws {
            let deadline = seconds.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
            let (prefix, from, count, progress, json, options) = (self.prefix, self.from, self.count, self.progress, self.json,
                                                                  self.connection)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await options.with { connection in
                        var command = ["AEGIS.WATCH", prefix]
                        if let from { command += ["FROM", String(from)] }
                        var message = try await connection.call(command)
                        var printed = 0
                        while true {
                            guard case .array(let parts) = message, let kind = parts.first?.text else {
                                if case .error(let text) = message { throw ToolError(text) }
                                throw ToolError("unexpected reply: \(render(message))")
                            }
                            if Self.print(kind, parts, progress: progress, json: json) {
                                printed += 1
                                if let count, printed >= count { return }
                            }
                            if kind == "compacted" { throw ToolError("the log was compacted past the watch: watch again without --from") }
                            message = try await connection.next()
                        }
                    }
                }
                // --seconds: the watch is cancelled when the time is up.
                if let deadline { group.addTask { try await Task.sleep(until: deadline) } }
                try await group.next()
                group.cancelAll()
            }
        }

        /// Prints one watch message; `true` for a change.
        static func print(_ kind: String, _ parts: [RESPValue], progress: Bool, json: Bool) -> Bool {
            func integer(_ k: Int) -> Int64 { if k < parts.count, case .integer(let n) = parts[k] { return n } else { return 0 } }
            func text(_ k: Int) -> String? { k < parts.count ? parts[k].text : nil }
            switch kind {
            case "change":
                if json {
                    var object: [String: Any] = ["index": integer(1), "event": text(2) ?? "", "key": text(3) ?? ""]
                    if let argument = text(4) { object["argument"] = argument }
                    Self.emit(object)
                } else {
                    Swift.print([String(integer(1)), text(2) ?? "", text(3) ?? "", text(4)].compactMap { $0 }.joined(separator: " "))
                }
                return true
            case "progress" where progress, "watch" where progress, "compacted":
                if json { Self.emit(["message": kind, "index": integer(kind == "watch" ? 2 : 1)]) } else {
                    Swift.print("# \(kind) \(kind == "watch" ? integer(2) : integer(1))")
                }
                return false
            default:
                return false
            }
        }

        static func emit(_ object: [String: Any]) {
            if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
                Swift.print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}
