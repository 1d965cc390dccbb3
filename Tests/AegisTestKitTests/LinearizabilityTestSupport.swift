import AegisRaft
import AegisTestKit

typealias Op = RegisterOperation

/// Builders for hand-made histories: `id`, then the interval `[from, to]` (`to` nil
/// for an operation that never completed).
func write(_ id: Int, _ value: UInt64?, _ from: UInt64, _ to: UInt64?, key: UInt64 = 0,
           client: UInt64 = 0, _ status: Op.Status = .ok) -> Op {
    Op(id: OperationID(id), client: client, key: key, kind: .write, value: value,
       invokeTime: from, completeTime: to, status: status)
}

func read(_ id: Int, _ output: UInt64?, _ from: UInt64, _ to: UInt64?, key: UInt64 = 0,
          client: UInt64 = 0, _ status: Op.Status = .ok) -> Op {
    Op(id: OperationID(id), client: client, key: key, kind: .read, output: output,
       invokeTime: from, completeTime: to, status: status)
}

func cas(_ id: Int, _ expected: UInt64?, _ new: UInt64?, swapped: Bool = true, _ from: UInt64, _ to: UInt64?,
         key: UInt64 = 0, client: UInt64 = 0, _ status: Op.Status = .ok) -> Op {
    Op(id: OperationID(id), client: client, key: key, kind: .compareAndSet, value: new, expected: expected,
       swapped: swapped, invokeTime: from, completeTime: to, status: status)
}

/// The verdict for key 0.
func verdict(_ history: [Op], initialValue: UInt64? = nil, maxStates: Int = 100_000) -> LinearizabilityVerdict? {
    LinearizabilityChecker.check(history, initialValue: initialValue, maxStates: maxStates).verdicts[0]
}

/// The violation for key 0, if any.
func violation(_ history: [Op], initialValue: UInt64? = nil) -> LinearizabilityViolation? {
    if case .notLinearizable(let v)? = verdict(history, initialValue: initialValue) { return v }
    return nil
}

/// Generates histories that are linearizable by construction: every client runs its
/// operations one after another with random gaps and durations; each operation gets a
/// linearization point inside its interval; outputs come from applying the operations
/// to a sequential register in the order of those points. Writes never write `nil`,
/// so once a write has completed no later read may return `nil`.
struct LinearizableHistoryGenerator {
    var clients: Int
    var keys: Int
    var operationsPerClient: Int
    /// Upper bound of an operation's duration (larger: more overlap).
    var maxDuration: UInt64 = 40
    /// Percentages of info and fail outcomes among writes and compare-and-sets.
    var infoPercent: UInt64 = 5
    var failPercent: UInt64 = 5

    func generate(seed: UInt64) -> [Op] {
        var rng = SplitMix64(seed: seed)
        var pending: [(op: Op, point: UInt64, takesEffect: Bool)] = []
        for client in 0..<clients {
            var now = rng.next() % 10
            for _ in 0..<operationsPerClient {
                let start = now + rng.next() % 10
                let duration = 1 + rng.next() % maxDuration
                // Points are distinct: time × clients + client.
                let point = (start + rng.next() % duration) * UInt64(clients) + UInt64(client)
                let key = rng.next() % UInt64(keys)
                let roll = rng.next() % 100
                var op: Op
                switch rng.next() % 3 {
                case 0: op = read(0, nil, start, start + duration, key: key, client: UInt64(client))
                case 1: op = write(0, 1 + rng.next() % 6, start, start + duration, key: key, client: UInt64(client))
                default:
                    op = cas(0, 1 + rng.next() % 6, 1 + rng.next() % 6, start, start + duration,
                             key: key, client: UInt64(client))
                }
                var takesEffect = true
                if op.kind != .read && roll < infoPercent {
                    op.status = .info
                    op.completeTime = nil
                    takesEffect = rng.next() % 2 == 0
                } else if op.kind != .read && roll < infoPercent + failPercent {
                    op.status = .fail
                    takesEffect = false
                }
                pending.append((op, point, takesEffect))
                now = start + duration + 1
            }
        }
        // Times are scaled like the points so that each point lies inside its interval.
        var registers: [UInt64: UInt64] = [:]
        var history: [Op] = []
        for (index, entry) in pending.sorted(by: { $0.point < $1.point }).enumerated() {
            var op = entry.op
            op.id = OperationID(index)
            op.invokeTime *= UInt64(clients)
            op.completeTime = op.completeTime.map { $0 * UInt64(clients) + UInt64(clients) - 1 }
            let current = registers[op.key]
            switch op.kind {
            case .read:
                op.output = current
            case .write:
                if entry.takesEffect { registers[op.key] = op.value }
            case .compareAndSet:
                let matches = current == op.expected
                if entry.takesEffect && matches { registers[op.key] = op.value }
                if op.status == .ok { op.swapped = matches }
            }
            history.append(op)
        }
        return history.sorted { $0.invokeTime < $1.invokeTime }
    }
}
