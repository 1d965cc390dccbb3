@testable import AegisKV
import AegisRaft

/// UTF-8 bytes of a string.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A log entry carrying `command`.
func entry(_ index: LogIndex, _ command: Command) -> LogEntry {
    LogEntry(index: index, term: 1, data: command.encoded())
}

/// Applies commands as consecutive entries starting after the machine's applied index.
@discardableResult
func applyAll(_ machine: inout StateMachine, _ commands: [Command]) -> [CommandResult] {
    commands.map { command in machine.apply(entry(machine.appliedIndex + 1, command)) }
}

/// A deterministic generator of random commands over a small key space, so that
/// sequences hit creates, overwrites, deletes, compare-and-swaps and increments of the
/// same keys. `seed` values come from the property-test generators.
struct CommandScript {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Keys of 1 to 40 bytes (inline and spilled), sharing prefixes.
    mutating func key() -> Key {
        let n = next() % 24
        let long = n % 3 == 0 ? String(repeating: "x", count: 20) : ""
        return Key("k\(n % 8)/\(long)\(n)")
    }

    mutating func command() -> Command {
        let key = key()
        switch next() % 9 {
        case 0: return .get(key)
        case 1, 2: return .set(key, bytes("v\(next() % 5)"))
        case 3: return .delete(key)
        case 4: return .compareAndSwap(key, expected: .version(next() % 3), new: bytes("c\(next() % 3)"))
        case 5: return .compareAndSwap(key, expected: .value(bytes("v\(next() % 5)")), new: bytes("w"))
        case 6: return .increment(key, by: Int64(bitPattern: next() % 7) - 3)
        case 7:
            let pairs = (0 ..< 1 + next() % 3).map { _ in KeyValuePair(self.key(), bytes("m\(next() % 5)")) }
            return .setMany([KeyValuePair(key, bytes("m"))] + pairs, onlyIfNoneExist: next() % 2 == 0)
        default: return .deleteMany([key] + (0 ..< next() % 3).map { _ in self.key() })
        }
    }
}
