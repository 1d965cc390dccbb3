/// A set of small integers (operation indices) as 64-bit words; hashable so that it
/// can key the search's memo.
struct OperationBitset: Hashable {
    private(set) var words: [UInt64]

    init(capacity: Int) { words = Array(repeating: 0, count: (capacity + 63) / 64) }

    mutating func insert(_ k: Int) { words[k >> 6] |= 1 << UInt64(k & 63) }
    mutating func remove(_ k: Int) { words[k >> 6] &= ~(1 << UInt64(k & 63)) }
}

/// A memoized search state: which operations are linearized and the value they leave.
struct SearchState: Hashable {
    var linearized: OperationBitset
    var value: UInt64?
}

/// Lowe's just-in-time linearization search over one key's operations.
///
/// The invocations and completions form a doubly linked list in time order. Walking
/// it from the front, the search tries to linearize each invoked operation before the
/// first completion; linearizing one unlinks its invocation and completion. Reaching
/// a completion means the operations tried so far cannot be extended, so the search
/// backtracks; reaching the completion of an info operation (at infinity, after every
/// other completion) means every ok operation is linearized. States already seen are
/// skipped: from the same set and value the rest of the search is the same.
struct LinearizationSearch {
    /// The deepest dead end, reported when the history is not linearizable.
    struct DeadEnd {
        var prefix: [Int]
        var value: UInt64?
        var blocking: Int
        var candidates: [Int]
    }

    enum Outcome {
        case linearizable
        case violation(DeadEnd)
        case budgetExhausted
    }

    private let effects: [RegisterEffect]
    private let isInfo: [Bool]
    /// Per list node (2 per operation, then the head sentinel): the operation, whether
    /// it is the invocation, the completion node of an invocation, and the links.
    private var operationOf: [Int] = []
    private var isCall: [Bool] = []
    private var match: [Int] = []
    private var next: [Int] = []
    private var previous: [Int] = []
    private let head: Int
    /// Memoized states (the budget counts them; at most `maxStates`).
    private(set) var statesExplored = 0

    init(operations: [RegisterOperation], effects: [RegisterEffect]) {
        self.effects = effects
        isInfo = operations.map { $0.status == .info }
        let count = operations.count
        // Invocations sort before completions at the same time (touching intervals are
        // concurrent); info completions come last, at infinity.
        var events: [(time: UInt64, rank: Int, operation: Int)] = []
        events.reserveCapacity(2 * count)
        for (k, operation) in operations.enumerated() {
            events.append((operation.invokeTime, 0, k))
            if operation.status == .info {
                events.append((UInt64.max, 2, k))
            } else {
                events.append((operation.completeTime ?? UInt64.max, 1, k))
            }
        }
        events.sort { ($0.time, $0.rank, $0.operation) < ($1.time, $1.rank, $1.operation) }
        head = 2 * count
        operationOf = events.map(\.operation) + [-1]
        isCall = events.map { $0.rank == 0 } + [false]
        match = Array(repeating: -1, count: head + 1)
        var callNode = Array(repeating: -1, count: count)
        for (node, event) in events.enumerated() {
            if event.rank == 0 { callNode[event.operation] = node } else { match[callNode[event.operation]] = node }
        }
        next = (0...head).map { $0 + 1 < head ? $0 + 1 : -1 }
        next[head] = count > 0 ? 0 : -1
        previous = (0...head).map { $0 == 0 ? head : $0 - 1 }
    }

    /// Searches from `initialValue`, memoizing at most `maxStates` states.
    mutating func run(initialValue: UInt64?, maxStates: Int) -> Outcome {
        var value = initialValue
        var linearized = OperationBitset(capacity: effects.count)
        var seen: Set<SearchState> = []
        var stack: [(node: Int, value: UInt64?)] = []
        var deepest: DeadEnd?
        var node = next[head]
        while node >= 0 {
            let operation = operationOf[node]
            if isCall[node] {
                var after = value
                if effects[operation].apply(to: &after) {
                    linearized.insert(operation)
                    if seen.insert(SearchState(linearized: linearized, value: after)).inserted {
                        guard statesExplored < maxStates else { return .budgetExhausted }
                        statesExplored += 1
                        stack.append((node, value))
                        value = after
                        lift(node)
                        node = next[head]
                        continue
                    }
                    linearized.remove(operation)
                }
                node = next[node]
            } else {
                if isInfo[operation] { return .linearizable }
                if stack.count > (deepest?.prefix.count ?? -1) {
                    deepest = DeadEnd(
                        prefix: stack.map { operationOf[$0.node] }, value: value,
                        blocking: operation, candidates: calls(before: node))
                }
                guard let top = stack.popLast() else {
                    return .violation(deepest ?? DeadEnd(
                        prefix: [], value: value, blocking: operation, candidates: calls(before: node)))
                }
                value = top.value
                linearized.remove(operationOf[top.node])
                unlift(top.node)
                node = next[top.node]
            }
        }
        return .linearizable
    }

    /// The operations invoked (and not linearized) before `node` in the list.
    private func calls(before node: Int) -> [Int] {
        var out: [Int] = []
        var cursor = next[head]
        while cursor >= 0 && cursor != node {
            if isCall[cursor] { out.append(operationOf[cursor]) }
            cursor = next[cursor]
        }
        return out
    }

    /// Unlinks an invocation and its completion.
    private mutating func lift(_ call: Int) {
        unlink(call)
        unlink(match[call])
    }

    /// Relinks what `lift` unlinked, in reverse order.
    private mutating func unlift(_ call: Int) {
        relink(match[call])
        relink(call)
    }

    private mutating func unlink(_ node: Int) {
        next[previous[node]] = next[node]
        if next[node] >= 0 { previous[next[node]] = previous[node] }
    }

    private mutating func relink(_ node: Int) {
        next[previous[node]] = node
        if next[node] >= 0 { previous[next[node]] = node }
    }
}
