import AegisOperations
import AegisServer
import Foundation

/// One step's outcome in `aegis dr run` (a log line, and an element of `--json`'s `steps`).
struct RunbookStepReport: Codable, Sendable {
    var index: Int
    var name: String
    var step: String
    /// `ok`, `failed` or `skipped` (after an earlier failure).
    var result: String
    var millis: UInt64
    var detail: String
}

/// The outcome of a runbook (`aegis dr run --json`).
struct RunbookReport: Codable, Sendable {
    var runbook: String
    var ok: Bool
    /// The first failed step (`index`, 1-based), if any.
    var failedStep: Int?
    var failure: String?
    var millis: UInt64
    var steps: [RunbookStepReport]
}

/// Executes a validated runbook against the clusters it names: one step at a time,
/// each within its timeout, stopping at the first failure (except `continue-on-failure`
/// steps, and `notify` steps with `always`, which run after a failure too).
struct RunbookRunner {
    let runbook: Runbook
    let tool: DRTool
    /// Called after each step (the log line).
    let onStep: (RunbookStepReport) -> Void

    /// What earlier steps learned, for later ones.
    private struct State {
        var promotedEpoch: UInt64?
        var fenceIndex: UInt64?
        var primaryCluster: String?
        var primaryClients: String?
    }

    private struct StepFailure: Error, CustomStringConvertible {
        var description: String
    }

    init(runbook: Runbook, tool: DRTool, onStep: @escaping (RunbookStepReport) -> Void) {
        self.runbook = runbook
        self.tool = tool
        self.onStep = onStep
    }

    func run() async -> RunbookReport {
        let started = ContinuousClock.now
        var state = State()
        var reports: [RunbookStepReport] = []
        var failed: RunbookStepReport?
        for (offset, step) in runbook.steps.enumerated() {
            var report = RunbookStepReport(index: offset + 1, name: step.name, step: step.action.kind.rawValue,
                                           result: "skipped", millis: 0, detail: "")
            let runsAfterFailure: Bool
            if case .notify(_, let always) = step.action { runsAfterFailure = always } else { runsAfterFailure = false }
            if let failed, !runsAfterFailure {
                report.detail = "not run: step \(failed.index) (\(failed.name)) failed"
                reports.append(report)
                onStep(report)
                continue
            }
            let stepStarted = ContinuousClock.now
            do {
                report.detail = try await execute(step, state: &state, results: reports, failed: failed)
                report.result = "ok"
            } catch {
                report.result = "failed"
                report.detail = "\(error)"
            }
            report.millis = millis(ContinuousClock.now - stepStarted)
            reports.append(report)
            onStep(report)
            if report.result == "failed" && !step.continueOnFailure && failed == nil { failed = report }
        }
        // The failure that stopped the runbook (a continue-on-failure step's does not).
        return RunbookReport(runbook: runbook.name, ok: failed == nil, failedStep: failed?.index,
                             failure: failed.map { "step \($0.index) (\($0.name)): \($0.detail)" },
                             millis: millis(ContinuousClock.now - started), steps: reports)
    }

    private func execute(_ step: RunbookStep, state: inout State, results: [RunbookStepReport],
                         failed: RunbookStepReport?) async throws -> String {
        let deadline = ContinuousClock.now + step.timeout
        let limit = RunbookStep.format(step.timeout)
        switch step.action {
        case .checkLag(let maxEntries, let maxSeconds):
            return try await poll(until: deadline, limit) { [tool, runbook] in
                let doc = try await tool.document(runbook.standby.joined(separator: ","))
                guard doc.role == "standby" else { return (false, "\(doc.clusterID) is \(doc.role), not a standby") }
                guard let link = doc.link else { return (false, "no node of the standby reports its link (no leader?)") }
                let contact = link.lastContactMillisAgo.map { "last contact \($0) ms ago" } ?? "never in contact"
                let detail = "\(link.lagEntries) entries, \(link.lagSeconds) s behind (\(contact))"
                let within = maxEntries.map { link.lagEntries <= $0 } ?? true
                    && maxSeconds.map { link.lagSeconds <= $0 } ?? true
                    && link.lastContactMillisAgo != nil
                return (within, within ? detail : "\(detail); the bound is "
                    + [maxEntries.map { "\($0) entries" }, maxSeconds.map { "\($0) s" }].compactMap { $0 }.joined(separator: " and "))
            }
        case .fencePrimary:
            let promotedEpoch = state.promotedEpoch
            let (fenced, primary) = try await withTimeout(step.timeout) { [tool, runbook] in
                let primary = try await tool.document(runbook.primary.joined(separator: ","))
                let standby = try await tool.document(runbook.standby.joined(separator: ","))
                let epoch = promotedEpoch ?? primary.epoch
                let (fenced, _) = try await tool.post(runbook.primary.joined(separator: ","), "/v1/dr/fence?epoch=\(epoch)"
                    + "&primary=\(escape(standby.clientAddresses))&primary-admin=\(escape(runbook.standby.joined(separator: ",")))")
                return (fenced, primary)
            }
            state.fenceIndex = fenced.index
            state.primaryCluster = primary.clusterID
            state.primaryClients = primary.clientAddresses
            return "fenced \(fenced.cluster) at epoch \(fenced.epoch), index \(fenced.index)"
        case .waitForDrain:
            guard let fenceIndex = state.fenceIndex, let source = state.primaryCluster else {
                throw StepFailure(description: "no fence index: the fence-primary step before it did not succeed")
            }
            return try await poll(until: deadline, limit) { [tool, runbook] in
                let doc = try await tool.document(runbook.standby.joined(separator: ","))
                let applied = doc.cursors.first { $0.source == source }?.lastIndex ?? 0
                let done = applied >= fenceIndex && doc.appliedIndex >= doc.commitIndex
                return (done, "the standby applied \(applied) of \(fenceIndex) entries of \(source)")
            }
        case .promote(let force):
            let (promoted, _) = try await withTimeout(step.timeout) { [tool, runbook] in
                try await tool.post(runbook.standby.joined(separator: ","), "/v1/dr/promote" + (force ? "?force=1" : ""))
            }
            state.promotedEpoch = promoted.epoch
            return "promoted \(promoted.cluster): epoch \(promoted.epoch), index \(promoted.index), waited \(promoted.waitedMillis) ms for the lease"
        case .redirectClients:
            return try await redirect(state: &state, deadline: deadline, limit: limit)
        case .verifyWrites(let key):
            let value = "\(runbook.name) \(UInt64(Date().timeIntervalSince1970 * 1000))"
            return try await poll(until: deadline, limit) { [tool, runbook] in
                let doc = try await tool.document(runbook.standby.joined(separator: ","))
                var failures: [String] = []
                for address in doc.clientAddresses.split(separator: ",").map(String.init) {
                    do {
                        let read = try await tool.resp(address) { connection in
                            let set = try await connection.call(["SET", key, value])
                            guard case .simpleString("OK") = set else { throw StepFailure(description: "SET answered \(render(set))") }
                            return try await connection.call(["GET", key])
                        }
                        guard read.text == value else { return (false, "\(address): read back \(render(read)), wrote '\(value)'") }
                        return (true, "wrote and read back '\(key)' through \(address)")
                    } catch {
                        failures.append("\(address): \(error)")
                    }
                }
                return (false, failures.joined(separator: "; "))
            }
        case .notify(let command, _):
            return try await notify(command, results: results, failed: failed, timeout: step.timeout)
        }
    }

    /// Every node of the old primary must refuse a write with `-READONLY … primary: NEW`.
    private func redirect(state: inout State, deadline: ContinuousClock.Instant, limit: String) async throws -> String {
        if state.primaryClients == nil {
            state.primaryClients = try await withTimeout(.seconds(10)) { [tool, runbook] in
                try await tool.document(runbook.primary.joined(separator: ",")).clientAddresses
            }
        }
        let old = (state.primaryClients ?? "").split(separator: ",").map(String.init)
        return try await poll(until: deadline, limit) { [tool, runbook] in
            let newPrimary = try await tool.document(runbook.standby.joined(separator: ","))
            guard newPrimary.role == "primary" else { return (false, "the standby is \(newPrimary.role), not promoted yet") }
            var wrong: [String] = []
            for address in old {
                do {
                    let reply = try await tool.resp(address) { try await $0.call(["SET", "aegis:runbook:redirect", "x"]) }
                    guard case .error(let text) = reply, text.hasPrefix("READONLY"),
                          text.contains("primary: \(newPrimary.clientAddresses)") else {
                        wrong.append("\(address) answered \(render(reply))")
                        continue
                    }
                } catch {
                    wrong.append("\(address): \(error)")
                }
            }
            return wrong.isEmpty
                ? (true, "\(old.count) nodes refuse writes naming \(newPrimary.clientAddresses)")
                : (false, wrong.joined(separator: "; "))
        }
    }

    /// Runs a notify hook with the results so far in its environment.
    private func notify(_ command: String, results: [RunbookStepReport], failed: RunbookStepReport?,
                        timeout: Duration) async throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["AEGIS_RUNBOOK"] = runbook.name
        environment["AEGIS_RUNBOOK_OK"] = failed == nil ? "true" : "false"
        environment["AEGIS_RUNBOOK_FAILED_STEP"] = failed.map { "\($0.index) \($0.name): \($0.detail)" } ?? ""
        environment["AEGIS_STEP_COUNT"] = "\(results.count)"
        for report in results {
            let prefix = "AEGIS_STEP_\(report.index)_"
            environment[prefix + "NAME"] = report.name
            environment[prefix + "KIND"] = report.step
            environment[prefix + "RESULT"] = report.result
            environment[prefix + "MILLIS"] = "\(report.millis)"
            environment[prefix + "DETAIL"] = String(report.detail.prefix(4096))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        environment["AEGIS_RUNBOOK_RESULTS"] = String(decoding: (try? encoder.encode(results)) ?? Data("[]".utf8), as: UTF8.self)
        let status = try await ShellHook.run(command, environment: environment, timeout: timeout)
        guard status == 0 else { throw StepFailure(description: "`\(command)` exited with status \(status)") }
        return "`\(command)` exited with status 0"
    }

    /// Repeats `attempt` until it reports done or the deadline passes (then fails with
    /// its last detail). An error in an attempt counts as not done.
    private func poll(until deadline: ContinuousClock.Instant, _ limit: String,
                      _ attempt: @escaping @Sendable () async throws -> (done: Bool, detail: String)) async throws -> String {
        var last = "no attempt finished"
        while true {
            do {
                let remaining = deadline - ContinuousClock.now
                let (done, detail) = try await withTimeout(max(remaining, .milliseconds(1)), attempt)
                if done { return detail }
                last = detail
            } catch {
                last = "\(error)"
            }
            guard ContinuousClock.now + .milliseconds(100) < deadline else {
                throw StepFailure(description: "not within \(limit): \(last)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func millis(_ duration: Duration) -> UInt64 {
        UInt64(max(0, duration.components.seconds)) * 1000 + UInt64(max(0, duration.components.attoseconds)) / 1_000_000_000_000_000
    }
}

/// Runs `body`, or fails once `timeout` has passed. On a timeout the body is cancelled
/// and not waited for (a connection that never answers and ignores cancellation must not
/// hold the tool).
func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = ResumeOnce()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let work = Task {
            do {
                let value = try await body()
                if once.claim() { continuation.resume(returning: value) }
            } catch {
                if once.claim() { continuation.resume(throwing: error) }
            }
        }
        Task {
            try? await Task.sleep(for: timeout)
            if once.claim() {
                work.cancel()
                continuation.resume(throwing: ToolError("not within \(RunbookStep.format(timeout))"))
            }
        }
    }
}

/// True for the first caller only.
final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var claimed = false

    func claim() -> Bool {
        lock.withLock {
            defer { claimed = true }
            return !claimed
        }
    }
}

/// A shell command run by `aegis dr run` (notify) and `aegis dr drill`.
enum ShellHook {
    /// Runs `command` with `/bin/sh -c`; its output goes to standard error (standard
    /// output stays the tool's, e.g. JSON). Terminated after `timeout`. The exit status.
    static func run(_ command: String, environment: [String: String], timeout: Duration) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.environment = environment
        process.standardOutput = FileHandle.standardError
        process.standardInput = FileHandle.nullDevice
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
        let started = ContinuousClock.now
        try process.run()
        let killer = Task {
            try await Task.sleep(for: timeout)
            if process.isRunning { process.terminate() }
        }
        defer { killer.cancel() }
        var iterator = exited.stream.makeAsyncIterator()
        let status = await iterator.next() ?? -1
        if process.terminationReason == .uncaughtSignal {
            throw ToolError(ContinuousClock.now - started >= timeout
                ? "`\(command)` did not finish within \(RunbookStep.format(timeout)) and was stopped"
                : "`\(command)` was killed by signal \(status)")
        }
        return status
    }
}
