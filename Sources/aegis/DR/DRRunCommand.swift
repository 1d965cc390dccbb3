import AegisOperations
import AegisServer
import ArgumentParser
import Foundation

/// `aegis dr run RUNBOOK`: executes a DR runbook (YAML), a log line per step.
struct DRRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Execute a DR runbook (YAML): ordered, timed steps, stopping at the first failed one.",
        discussion: """
        Steps: check-lag, fence-primary, wait-for-drain, promote, redirect-clients, verify-writes, notify. \
        Each has a timeout (timeout: 30s; defaults.timeout); the run stops at the first failed step (exit \
        status 1, naming the step and why) unless it says continue-on-failure: true; notify steps with \
        always: true run after a failure too. The file is validated before anything runs: an unknown step or \
        field is an error naming the step. See examples/dr-failover.yaml and the AegisOperations article.

          aegis dr run examples/dr-failover.yaml --dry-run
          aegis dr run failover.yaml --json
        """)
    @Argument(help: ArgumentHelp("The runbook file (YAML).", valueName: "runbook")) var runbook: String
    @Flag(help: "Print the plan; contact nothing.") var dryRun = false
    @Flag(help: "Print one JSON document (the plan, or every step's result) instead of log lines.") var json = false
    @OptionGroup var security: ToolSecurityOptions

    func run() async throws {
        let book = try Self.load(runbook)
        if dryRun {
            if json {
                try printJSON(RunbookPlanDocument(runbook: book.name, primary: book.primary, standby: book.standby,
                                                  steps: book.plan))
            } else {
                print("runbook \(book.name): \(book.steps.count) steps (dry run: nothing is contacted)")
                for line in book.plan { print(line) }
            }
            return
        }
        let total = book.steps.count
        let runner = RunbookRunner(runbook: book, tool: DRTool(security: security)) { step in
            guard !json else { return }
            printLine("[\(step.index)/\(total)] \(step.name) (\(step.step)): \(step.result) in \(Self.seconds(step.millis)) s — \(step.detail)")
        }
        if !json { printLine("runbook \(book.name): \(total) steps") }
        let report = await runner.run()
        if json {
            try printJSON(report)
        } else if report.ok {
            printLine("runbook \(book.name) finished in \(Self.seconds(report.millis)) s: every step passed")
        }
        guard report.ok else {
            if !json { printLine("runbook \(book.name) stopped at \(report.failure ?? "a step")") }
            throw ExitCode(1)
        }
    }

    /// Reads and validates a runbook file.
    static func load(_ path: String) throws -> Runbook {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attributes?[.size] as? Int, size > Runbook.maxFileBytes {
            throw ToolError("\(path): \(size) bytes; a runbook is at most \(Runbook.maxFileBytes)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ToolError("cannot read \(path)") }
        guard let text = String(data: data, encoding: .utf8) else { throw ToolError("\(path) is not UTF-8 text") }
        do {
            return try Runbook.parse(yaml: text)
        } catch {
            throw ToolError("\(path): \(error.description); nothing was executed")
        }
    }

    static func seconds(_ millis: UInt64) -> String { String(format: "%.3f", Double(millis) / 1000) }
}

/// `aegis dr run --dry-run --json`.
struct RunbookPlanDocument: Codable {
    var runbook: String
    var primary: [String]
    var standby: [String]
    var steps: [String]
}

/// Writes a line to standard output at once (unbuffered: a log line per step as it ends).
func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Prints pretty, key-sorted JSON.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension DRTool {
    /// Runs `body` on a RESP connection to `address` (TLS as for the admin API; password
    /// and user from $AEGIS_PASSWORD and $AEGIS_USER).
    func resp<Result: Sendable>(_ address: String, _ body: (inout RESPConnection) async throws -> Result) async throws -> Result {
        let environment = ProcessInfo.processInfo.environment
        return try await RESPConnection.with(address, password: environment["AEGIS_PASSWORD"], user: environment["AEGIS_USER"],
                                             tls: try security.clientContext(), body)
    }
}
