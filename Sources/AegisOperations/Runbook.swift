import Foundation

/// A disaster-recovery runbook: ordered, timed steps that an operator (or `aegis dr run`)
/// carries out against a primary and a standby cluster.
///
/// A runbook is read from a YAML file (see `Runbook.parse(yaml:)` and the module's
/// article for the format). Validation is strict: an unknown step or field is an error
/// that names the step, and nothing is executed.
public struct Runbook: Sendable, Hashable {
    /// The runbook's name, shown in every log line and passed to notify hooks.
    public var name: String
    /// The primary cluster's admin addresses (`host:port`), every node.
    public var primary: [String]
    /// The standby cluster's admin addresses (`host:port`), every node.
    public var standby: [String]
    /// The steps, in the order they run.
    public var steps: [RunbookStep]

    /// Creates a runbook.
    public init(name: String, primary: [String], standby: [String], steps: [RunbookStep]) {
        self.name = name
        self.primary = primary
        self.standby = standby
        self.steps = steps
    }

    /// The largest runbook file read, in bytes.
    public static let maxFileBytes = 256 << 10
    /// The longest line of a runbook file, in bytes (bounds the nesting depth).
    public static let maxLineBytes = 1024
    /// The most steps in one runbook.
    public static let maxSteps = 100
    /// The most addresses in `primary` or `standby`.
    public static let maxAddresses = 16
    /// The longest step timeout.
    public static let maxTimeout: Duration = .seconds(3600)
    /// The timeout of a step that names none (and no `defaults.timeout`).
    public static let defaultTimeout: Duration = .seconds(30)
    /// The longest notify command, in bytes.
    public static let maxCommandBytes = 4096
    /// The longest key of a `verify-writes` step, in bytes.
    public static let maxKeyBytes = 512
    /// The longest name (of the runbook or a step), in bytes.
    public static let maxNameBytes = 128

    /// The plan: one line per step, what it will do and its timeout (`--dry-run`).
    public var plan: [String] {
        steps.enumerated().map { index, step in
            "\(index + 1). \(step.name) [\(step.action.kind.rawValue), timeout \(RunbookStep.format(step.timeout))"
                + (step.continueOnFailure ? ", continues on failure" : "") + "]: "
                + step.action.summary(primary: primary, standby: standby)
        }
    }
}

/// One step of a runbook.
public struct RunbookStep: Sendable, Hashable {
    /// The name in the log (default: the step's kind).
    public var name: String
    /// What the step does.
    public var action: RunbookAction
    /// How long the step may take; past it the step fails.
    public var timeout: Duration
    /// Run the next steps even if this one fails (the runbook still reports the failure).
    public var continueOnFailure: Bool

    /// Creates a step.
    public init(name: String, action: RunbookAction, timeout: Duration = Runbook.defaultTimeout, continueOnFailure: Bool = false) {
        self.name = name
        self.action = action
        self.timeout = timeout
        self.continueOnFailure = continueOnFailure
    }

    /// `1500` ms as `1.5s`, `30` s as `30s`.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return millis % 1000 == 0 ? "\(millis / 1000)s" : "\(millis)ms"
    }
}

/// The kinds of steps, as written in a runbook file.
public enum RunbookStepKind: String, Sendable, Hashable, CaseIterable {
    case checkLag = "check-lag"
    case fencePrimary = "fence-primary"
    case waitForDrain = "wait-for-drain"
    case promote
    case redirectClients = "redirect-clients"
    case verifyWrites = "verify-writes"
    case notify
}

/// What a step does.
public enum RunbookAction: Sendable, Hashable {
    /// Passes when the standby's leader is at most `maxEntries` entries and `maxSeconds`
    /// seconds behind its primary (each bound optional, at least one given); polls until
    /// the timeout.
    case checkLag(maxEntries: UInt64?, maxSeconds: Double?)
    /// Fences the primary: it takes no more writes and names the standby as the primary.
    /// Before a promotion, at the primary's epoch; after one, at the promoted epoch.
    case fencePrimary
    /// Waits until the standby applied every entry of the primary up to the fence
    /// (needs a `fence-primary` step before it): RPO 0.
    case waitForDrain
    /// Promotes the standby (new epoch). Without `force`, waits out the old primary's
    /// write lease first.
    case promote(force: Bool)
    /// Checks that every node of the old primary answers a write with the redirection
    /// error (`-READONLY … primary: <the new primary's client addresses>`); polls until
    /// the timeout.
    case redirectClients
    /// Writes `key` through the new primary and reads it back.
    case verifyWrites(key: String)
    /// Runs `command` with `/bin/sh -c`, the results so far in environment variables;
    /// with `always`, it runs even after a failed step.
    case notify(command: String, always: Bool)

    /// The step's kind.
    public var kind: RunbookStepKind {
        switch self {
        case .checkLag: return .checkLag
        case .fencePrimary: return .fencePrimary
        case .waitForDrain: return .waitForDrain
        case .promote: return .promote
        case .redirectClients: return .redirectClients
        case .verifyWrites: return .verifyWrites
        case .notify: return .notify
        }
    }

    /// What the step will do, in one sentence.
    public func summary(primary: [String], standby: [String]) -> String {
        let p = primary.joined(separator: ","), s = standby.joined(separator: ",")
        switch self {
        case .checkLag(let entries, let seconds):
            let bounds = [entries.map { "\($0) entries" }, seconds.map { "\($0) s" }].compactMap { $0 }.joined(separator: " and ")
            return "check that the standby (\(s)) is at most \(bounds) behind its primary"
        case .fencePrimary:
            return "fence the primary (\(p)): it refuses writes and names the standby as the new primary"
        case .waitForDrain:
            return "wait until the standby (\(s)) applied every entry of the primary up to the fence"
        case .promote(let force):
            return "promote the standby (\(s)) to primary" + (force ? " at once (--force)" : ", after the old primary's write lease")
        case .redirectClients:
            return "check that every node of the old primary (\(p)) refuses writes naming the new primary"
        case .verifyWrites(let key):
            return "write '\(key)' through the new primary (\(s)) and read it back"
        case .notify(let command, let always):
            return "run `\(command)`" + (always ? " (also after a failure)" : "")
        }
    }
}
