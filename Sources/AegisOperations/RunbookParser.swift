import AegisReplication
import AegisServer
import AegisTransport
import Foundation
import Yams

/// Why a runbook file was refused: what is wrong, and where (the step and the line).
public struct RunbookError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the step (`step 3 (promote)`) or field and the line.
    public var description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

extension Runbook {
    /// The fields of the runbook document.
    static let topFields: Set<String> = ["name", "primary", "standby", "defaults", "steps"]
    /// The fields every step accepts.
    static let commonStepFields: Set<String> = ["step", "name", "timeout", "continue-on-failure"]
    /// The fields each kind of step accepts beyond the common ones.
    static let stepFields: [RunbookStepKind: Set<String>] = [
        .checkLag: ["max-entries", "max-seconds"],
        .fencePrimary: [],
        .waitForDrain: [],
        .promote: ["force"],
        .redirectClients: [],
        .verifyWrites: ["key"],
        .notify: ["command", "always"],
    ]

    /// Parses and validates a runbook (YAML). Every field is checked: an unknown step or
    /// field, a missing one, a wrong type or a value out of range is an error naming
    /// the step and the line.
    public static func parse(yaml text: String) throws(RunbookError) -> Runbook {
        guard text.utf8.count <= maxFileBytes else {
            throw RunbookError("the runbook is \(text.utf8.count) bytes; at most \(maxFileBytes)")
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.utf8.count > maxLineBytes {
            throw RunbookError("line \(number + 1) is \(line.utf8.count) bytes long; at most \(maxLineBytes)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw RunbookError("not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping else {
            throw RunbookError("the runbook must be a mapping with name, primary, standby and steps")
        }
        let fields = try Fields(top, context: "the runbook", allowed: topFields)
        let name = try fields.name("name", required: true) ?? ""
        let primary = try fields.addresses("primary")
        let standby = try fields.addresses("standby")
        var defaultTimeout = Runbook.defaultTimeout
        if let defaultsNode = fields["defaults"] {
            guard let mapping = defaultsNode.mapping else { throw RunbookError("defaults\(at(defaultsNode)) must be a mapping") }
            let defaults = try Fields(mapping, context: "defaults", allowed: ["timeout"])
            defaultTimeout = try defaults.duration("timeout") ?? defaultTimeout
        }
        guard let stepsNode = fields["steps"] else { throw RunbookError("the runbook has no steps") }
        guard let sequence = stepsNode.sequence else { throw RunbookError("steps\(at(stepsNode)) must be a list") }
        guard !sequence.isEmpty else { throw RunbookError("steps\(at(stepsNode)) is empty") }
        guard sequence.count <= maxSteps else { throw RunbookError("\(sequence.count) steps; at most \(maxSteps)") }
        var steps: [RunbookStep] = []
        for (index, node) in sequence.enumerated() {
            steps.append(try parseStep(node, number: index + 1, defaultTimeout: defaultTimeout))
        }
        let runbook = Runbook(name: name, primary: primary, standby: standby, steps: steps)
        try runbook.validateOrder()
        return runbook
    }

    private static func parseStep(_ node: Node, number: Int, defaultTimeout: Duration) throws(RunbookError) -> RunbookStep {
        guard let mapping = node.mapping else {
            throw RunbookError("step \(number)\(at(node)) must be a mapping with `step: KIND`")
        }
        guard let kindNode = mapping["step"], let kindText = kindNode.scalar?.string else {
            throw RunbookError("step \(number)\(at(node)) has no `step:` field (one of \(kindList))")
        }
        guard let kind = RunbookStepKind(rawValue: kindText) else {
            throw RunbookError("step \(number)\(at(kindNode)): unknown step '\(kindText)' (one of \(kindList))")
        }
        let context = "step \(number) (\(kind.rawValue))"
        let fields = try Fields(mapping, context: context, allowed: commonStepFields.union(stepFields[kind] ?? []))
        let action: RunbookAction
        switch kind {
        case .checkLag:
            let entries = try fields.unsigned("max-entries")
            let seconds = try fields.seconds("max-seconds")
            guard entries != nil || seconds != nil else {
                throw RunbookError("\(context)\(at(node)): give max-entries, max-seconds or both")
            }
            action = .checkLag(maxEntries: entries, maxSeconds: seconds)
        case .fencePrimary: action = .fencePrimary
        case .waitForDrain: action = .waitForDrain
        case .promote: action = .promote(force: try fields.bool("force") ?? false)
        case .redirectClients: action = .redirectClients
        case .verifyWrites:
            let key = try fields.string("key") ?? "aegis:runbook:verify"
            guard !key.isEmpty, key.utf8.count <= maxKeyBytes else {
                throw RunbookError("\(context): key must be 1 to \(maxKeyBytes) bytes")
            }
            action = .verifyWrites(key: key)
        case .notify:
            guard let command = try fields.string("command"), !command.isEmpty else {
                throw RunbookError("\(context)\(at(node)): command is required")
            }
            guard command.utf8.count <= maxCommandBytes else {
                throw RunbookError("\(context): command is \(command.utf8.count) bytes; at most \(maxCommandBytes)")
            }
            action = .notify(command: command, always: try fields.bool("always") ?? false)
        }
        return RunbookStep(name: try fields.name("name", required: false) ?? kind.rawValue, action: action,
                           timeout: try fields.duration("timeout") ?? defaultTimeout,
                           continueOnFailure: try fields.bool("continue-on-failure") ?? false)
    }

    /// Rules about the order of steps.
    func validateOrder() throws(RunbookError) {
        var fenced = false
        for (index, step) in steps.enumerated() {
            switch step.action {
            case .fencePrimary: fenced = true
            case .waitForDrain where !fenced:
                throw RunbookError("step \(index + 1) (wait-for-drain) needs a fence-primary step before it: the drain waits for the fence's index")
            default: break
            }
        }
        let names = steps.map(\.name)
        if let duplicate = names.enumerated().first(where: { names[..<$0.offset].contains($0.element) }) {
            throw RunbookError("step \(duplicate.offset + 1): the name '\(duplicate.element)' is used twice; give each step its own name")
        }
    }

    private static var kindList: String { RunbookStepKind.allCases.map(\.rawValue).joined(separator: ", ") }
}

/// ` (line N)` for a node, or nothing.
private func at(_ node: Node) -> String { node.mark.map { " (line \($0.line))" } ?? "" }

/// The fields of one mapping, checked against the allowed names.
private struct Fields {
    let values: [String: Node]
    let context: String

    init(_ mapping: Node.Mapping, context: String, allowed: Set<String>) throws(RunbookError) {
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw RunbookError("\(context)\(at(keyNode)): a field name must be a plain word")
            }
            guard allowed.contains(key) else {
                throw RunbookError("\(context)\(at(keyNode)): unknown field '\(key)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard values[key] == nil else { throw RunbookError("\(context)\(at(keyNode)): field '\(key)' given twice") }
            if case .alias = value { throw RunbookError("\(context)\(at(keyNode)): YAML aliases are not allowed") }
            values[key] = value
        }
        self.values = values
        self.context = context
    }

    subscript(_ name: String) -> Node? { values[name] }

    func scalar(_ name: String) throws(RunbookError) -> (text: String, node: Node)? {
        guard let node = values[name] else { return nil }
        guard let scalar = node.scalar else { throw RunbookError("\(context)\(at(node)): \(name) must be a single value") }
        return (scalar.string, node)
    }

    func string(_ name: String) throws(RunbookError) -> String? { try scalar(name)?.text }

    func name(_ name: String, required: Bool) throws(RunbookError) -> String? {
        guard let text = try string(name) else {
            if required { throw RunbookError("\(context) has no \(name)") }
            return nil
        }
        guard !text.isEmpty, text.utf8.count <= Runbook.maxNameBytes,
              text.unicodeScalars.allSatisfy({ !CharacterSet.controlCharacters.contains($0) }) else {
            throw RunbookError("\(context): \(name) must be 1 to \(Runbook.maxNameBytes) bytes without control characters")
        }
        return text
    }

    func bool(_ name: String) throws(RunbookError) -> Bool? {
        guard let (text, node) = try scalar(name) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default: throw RunbookError("\(context)\(at(node)): \(name) must be true or false, not '\(text)'")
        }
    }

    func unsigned(_ name: String) throws(RunbookError) -> UInt64? {
        guard let (text, node) = try scalar(name) else { return nil }
        guard let value = UInt64(text) else {
            throw RunbookError("\(context)\(at(node)): \(name) must be a whole number ≥ 0, not '\(text)'")
        }
        return value
    }

    /// A number of seconds (0 to one day, fractions allowed).
    func seconds(_ name: String) throws(RunbookError) -> Double? {
        guard let (text, node) = try scalar(name) else { return nil }
        guard let value = Double(text), value.isFinite, value >= 0, value <= 86_400 else {
            throw RunbookError("\(context)\(at(node)): \(name) must be a number of seconds from 0 to 86400, not '\(text)'")
        }
        return value
    }

    /// A duration like `30s`, `500ms` or `2m`, up to `Runbook.maxTimeout`.
    func duration(_ name: String) throws(RunbookError) -> Duration? {
        guard let (text, node) = try scalar(name) else { return nil }
        guard let duration = BackupServiceConfiguration.parseDuration(text), duration <= Runbook.maxTimeout else {
            throw RunbookError("\(context)\(at(node)): \(name) must be a duration like 30s, 500ms or 2m, at most 1h; not '\(text)'")
        }
        return duration
    }

    /// A list of `host:port`, as a YAML list or one comma-separated string.
    func addresses(_ name: String) throws(RunbookError) -> [String] {
        guard let node = values[name] else { throw RunbookError("\(context) has no \(name) (its admin addresses)") }
        var list: [String] = []
        if let sequence = node.sequence {
            for item in sequence {
                guard let text = item.scalar?.string else { throw RunbookError("\(name)\(at(item)): each address must be host:port") }
                list.append(text)
            }
        } else if let text = node.scalar?.string {
            list = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard !list.isEmpty, list.count <= Runbook.maxAddresses else {
            throw RunbookError("\(name)\(at(node)): 1 to \(Runbook.maxAddresses) admin addresses (host:port)")
        }
        for address in list where PeerAddress(parsing: address) == nil || address.utf8.count > 256 {
            throw RunbookError("\(name)\(at(node)): '\(address)' is not host:port")
        }
        return list
    }
}
