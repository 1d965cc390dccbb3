public import AegisRaft

/// A small deterministic state machine for the simulator: integer registers with
/// write and compare-and-set, so client histories can be checked for
/// linearizability.
public struct RegisterMachine: ReplicatedStateMachine, Sendable {
    /// Register values by key; a missing key reads as 0.
    public private(set) var registers: [UInt64: UInt64] = [:]
    public private(set) var appliedIndex: LogIndex = 0

    /// The result of applying one entry.
    public enum Output: Sendable, Hashable {
        /// A write was applied.
        case written
        /// A compare-and-set succeeded (`true`) or found another value (`false`).
        case compareAndSet(Bool)
        /// Not a register command (no-op, configuration change, or undecodable).
        case none
    }

    /// A register command as stored in a log entry.
    public enum Command: Sendable, Hashable {
        case write(key: UInt64, value: UInt64)
        case compareAndSet(key: UInt64, expected: UInt64, new: UInt64)

        /// 1 + 3 × 8 bytes, plus an 8-byte operation identifier.
        public func encoded(operation: UInt64) -> [UInt8] {
            var out = [UInt8]()
            out.reserveCapacity(33)
            func put(_ v: UInt64) { for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
            switch self {
            case .write(let key, let value):
                out.append(1); put(key); put(value); put(0)
            case .compareAndSet(let key, let expected, let new):
                out.append(2); put(key); put(new); put(expected)
            }
            put(operation)
            return out
        }

        /// Decodes a command and its operation identifier; nil if malformed.
        public static func decode(_ data: [UInt8]) -> (Command, operation: UInt64)? {
            guard data.count == 33 else { return nil }
            func get(_ at: Int) -> UInt64 {
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(data[at + k]) << (8 * k) }
                return v
            }
            switch data[0] {
            case 1: return (.write(key: get(1), value: get(9)), get(25))
            case 2: return (.compareAndSet(key: get(1), expected: get(17), new: get(9)), get(25))
            default: return nil
            }
        }
    }

    /// Creates an empty machine.
    public init() {}

    public mutating func apply(_ entry: LogEntry) -> Output {
        guard entry.index > appliedIndex else { return .none }
        appliedIndex = entry.index
        guard entry.type == .command, let (command, _) = Command.decode(entry.data) else { return .none }
        switch command {
        case .write(let key, let value):
            registers[key] = value
            return .written
        case .compareAndSet(let key, let expected, let new):
            guard registers[key, default: 0] == expected else { return .compareAndSet(false) }
            registers[key] = new
            return .compareAndSet(true)
        }
    }

    public func snapshotData() throws -> [UInt8] {
        var out = [UInt8]()
        func put(_ v: UInt64) { for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
        put(appliedIndex)
        for key in registers.keys.sorted() {
            put(key)
            put(registers[key, default: 0])
        }
        return out
    }

    public mutating func restore(from snapshot: Snapshot) throws {
        let data = snapshot.data
        guard data.count >= 8, (data.count - 8) % 16 == 0 else {
            throw RaftError.storage("register snapshot has a bad length \(data.count)")
        }
        func get(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(data[at + k]) << (8 * k) }
            return v
        }
        var registers: [UInt64: UInt64] = [:]
        var at = 8
        while at < data.count {
            registers[get(at)] = get(at + 8)
            at += 16
        }
        self.registers = registers
        appliedIndex = snapshot.metadata.index
    }
}
