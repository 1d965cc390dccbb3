// aegis-check-history: the linearizability verdict on a recorded register history.
//
// The real-process fault tester (`scripts/aegis-jepsen`, see Docs/jepsen.md) records
// its register operations as JSON lines (`HistoryJSONLines`) and calls this program,
// so every history is checked by `AegisTestKit`'s `LinearizabilityChecker`.
//
//     aegis-check-history [--max-states N] [--initial VALUE] history.jsonl
//
// Prints one JSON object: `ops`, `keys`, `linearizable`, `unknown_keys`,
// `violations` (with the checker's explanation), `states_explored`. Exits 0 when
// every key is linearizable, 1 when a key is not, 2 when a key is unknown (the search
// gave up: callers count it as a failure) or the file cannot be read.
import AegisTestKit
import Foundation

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

func fail(_ message: String) -> Never {
    print("{\"error\":\(jsonString(message))}")
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var maxStates = LinearizabilityChecker.defaultMaxStates
var initialValue: UInt64?
var path: String?
while !arguments.isEmpty {
    let argument = arguments.removeFirst()
    switch argument {
    case "--max-states":
        guard let text = arguments.first, let n = Int(text), n > 0 else { fail("--max-states needs a positive integer") }
        arguments.removeFirst()
        maxStates = n
    case "--initial":
        guard let text = arguments.first, let v = UInt64(text) else { fail("--initial needs an unsigned integer") }
        arguments.removeFirst()
        initialValue = v
    case "-h", "--help":
        print("usage: aegis-check-history [--max-states N] [--initial VALUE] history.jsonl")
        exit(0)
    default:
        guard path == nil else { fail("unexpected argument '\(argument)'") }
        path = argument
    }
}
guard let path else { fail("usage: aegis-check-history [--max-states N] [--initial VALUE] history.jsonl") }
guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
    fail("cannot read '\(path)'")
}
let operations: [RegisterOperation]
do {
    operations = try HistoryJSONLines.decode(text)
} catch {
    fail("\(path): \(error)")
}

let result = LinearizabilityChecker.check(operations, initialValue: initialValue, maxStates: maxStates)
let unknown = result.unknownKeys.sorted { $0.key < $1.key }
let violations = result.violations.sorted { $0.key < $1.key }
let unknownJSON = unknown.map { "{\"key\":\($0.key),\"reason\":\(jsonString($0.reason.description))}" }
let violationsJSON = violations.map { "{\"key\":\($0.key),\"explanation\":\(jsonString($0.description))}" }
let linearizable = violations.isEmpty && unknown.isEmpty
print("{\"ops\":\(operations.count),\"keys\":\(result.verdicts.count),\"linearizable\":\(linearizable),"
    + "\"unknown_keys\":[\(unknownJSON.joined(separator: ","))],\"violations\":[\(violationsJSON.joined(separator: ","))],"
    + "\"states_explored\":\(result.statesExplored)}")
exit(linearizable ? 0 : (violations.isEmpty ? 2 : 1))
