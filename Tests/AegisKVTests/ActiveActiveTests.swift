@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// Active-active through the command path: clusters are state machines that apply
// client commands and each other's batches as log entries.

/// One cluster of a test group: its state machine, its log, and the operations whose
/// effects it holds (for the model).
struct AATestCluster {
    let id: String
    var machine: StateMachine
    var log: [LogEntry] = []
    var known: Set<Int> = []

    init(_ id: String, activeActive: Bool = true) {
        self.id = id
        machine = StateMachine(replica: ReplicaID(id))
        if activeActive { apply(.setActiveActive(ActiveActiveSettings(enabled: true)), time: 1) }
    }

    @discardableResult
    mutating func apply(_ command: Command, time: UInt64) -> CommandResult {
        let entry = LogEntry(index: UInt64(log.count + 1), term: 1, data: command.encoded(), timestamp: time)
        log.append(entry)
        return machine.apply(entry)
    }

    /// The batch a peer whose cursor for this cluster is `after` gets now.
    func batch(after: UInt64, time: UInt64) -> ActiveActiveBatch {
        let entries = Array(log.dropFirst(Int(after)))
        return machine.activeActiveBatch(source: id, after: after, entries: entries, sourceCommit: UInt64(log.count),
                                         sourceTime: time)
    }

    func cursor(for source: String) -> UInt64 { machine.activeActiveCursors[source]?.lastIndex ?? 0 }
}

/// A client operation as the model sees it.
struct AAModelOp {
    enum Kind { case set([UInt8]), delete, increment(Int64), add([UInt8]), remove([UInt8]), hashSet([UInt8], [UInt8]), hashDelete([UInt8]) }
    let id: Int
    let key: Key
    let kind: Kind
    let time: UInt64
    let seen: Set<Int>

    var isRegisterWrite: Bool {
        switch kind {
        case .set, .delete: return true
        default: return false
        }
    }
}

/// What the CRDT semantics say each key converges to, from the operations and what
/// each one had seen when it was issued (its causal past).
struct AAModel {
    var ops: [AAModelOp] = []

    func ops(of key: Key) -> [AAModelOp] { ops.filter { $0.key == key } }

    /// A string or counter key: the last register write wins; increments count when they
    /// were made on top of that very register write (none: the key never existed).
    func string(_ key: Key) -> [UInt8]? {
        let all = ops(of: key)
        let winner = all.filter(\.isRegisterWrite).max { $0.time < $1.time }
        var sum: Int64 = 0
        var counted = false
        for op in all {
            guard case .increment(let amount) = op.kind else { continue }
            let base = all.filter { $0.isRegisterWrite && op.seen.contains($0.id) }.max { $0.time < $1.time }
            if base?.id == winner?.id {
                sum += amount
                counted = true
            }
        }
        switch winner?.kind {
        case .set(let value)?:
            return counted ? Array(String((parseDecimalInt64(value) ?? 0) + sum).utf8) : value
        default:
            return counted ? Array(String(sum).utf8) : nil
        }
    }

    /// Whether an add survives: no remove (of the member, or of the key) had seen it.
    func survives(_ add: AAModelOp, removedBy matches: (AAModelOp) -> Bool) -> Bool {
        !ops(of: add.key).contains { matches($0) && $0.seen.contains(add.id) }
    }

    /// A set key: add-wins observed remove.
    func set(_ key: Key) -> [[UInt8]] {
        var members = Set<[UInt8]>()
        for op in ops(of: key) {
            guard case .add(let member) = op.kind else { continue }
            let removed = !survives(op) { other in
                if case .remove(let m) = other.kind { return m == member }
                if case .delete = other.kind { return true }
                return false
            }
            if !removed { members.insert(member) }
        }
        return members.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// A hash key: a field is present while an add of it survives; its value is the last written.
    func hash(_ key: Key) -> [[UInt8]] {
        var latest: [[UInt8]: (time: UInt64, value: [UInt8])] = [:]
        var present = Set<[UInt8]>()
        for op in ops(of: key) {
            guard case .hashSet(let field, let value) = op.kind else { continue }
            if latest[field].map({ $0.time < op.time }) ?? true { latest[field] = (op.time, value) }
            let kept = survives(op) { other in
                if case .hashDelete(let f) = other.kind { return f == field }
                if case .delete = other.kind { return true }
                return false
            }
            if kept { present.insert(field) }
        }
        var flat: [[UInt8]] = []
        for field in present.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            flat.append(field)
            flat.append(latest[field]?.value ?? [])
        }
        return flat
    }
}

/// A group of clusters exchanging batches with delays, reordering and duplicates.
struct AATestGroup {
    var clusters: [AATestCluster]
    var model = AAModel()
    var time: UInt64 = 10
    var inFlight: [(target: Int, batch: ActiveActiveBatch, carried: Set<Int>)] = []
    var rng: SplitMix64

    init(count: Int, seed: UInt64) {
        clusters = (0 ..< count).map { AATestCluster(["a", "b", "c"][$0]) }
        rng = SplitMix64(seed: seed)
    }

    mutating func tick() -> UInt64 {
        time += 1 + rng.next() % 3
        return time
    }

    /// Issues a client command on cluster `c`; records it in the model if it took effect.
    mutating func issue(_ c: Int, _ command: Command, as kind: AAModelOp.Kind?) {
        let now = tick()
        let result = clusters[c].apply(command, time: now)
        guard result.error == nil, let kind else { return }
        if case .deleteMany = command, result.keyCount == 0 { return }
        let op = AAModelOp(id: model.ops.count, key: command.key, kind: kind, time: now, seen: clusters[c].known)
        model.ops.append(op)
        clusters[c].known.insert(op.id)
    }

    /// Makes the batch cluster `source` would send `target` now, and holds it.
    mutating func ship(from source: Int, to target: Int) {
        let after = clusters[target].cursor(for: clusters[source].id)
        let batch = clusters[source].batch(after: after, time: time)
        let keys = Set(batch.states.map(\.key))
        let carried = clusters[source].known.filter { keys.contains(model.ops[$0].key) }
        inFlight.append((target, batch, carried))
    }

    /// Delivers held batch `k` (kept for a duplicate delivery when `keep`).
    mutating func deliver(_ k: Int, keep: Bool) {
        let flight = inFlight[k]
        if !keep { inFlight.remove(at: k) }
        let result = clusters[flight.target].apply(.activeActiveBatch(flight.batch), time: tick())
        #expect(result.error == nil, "\(String(describing: result.error))")
        if result.keyCount > 0 { clusters[flight.target].known.formUnion(flight.carried) }
    }

    /// Every cluster pulls from every other until nothing is left to merge.
    mutating func settle() {
        inFlight.removeAll()
        for _ in 0 ..< 3 {
            for source in clusters.indices {
                for target in clusters.indices where target != source {
                    ship(from: source, to: target)
                    deliver(inFlight.count - 1, keep: false)
                }
            }
        }
    }
}

let aaKeySpace: [Key] = ["s1", "s2", "c1", "c2", "S1", "S2", "H1", "H2"]

/// A random client command on a random key of the test's key space.
func aaRandomCommand(_ rng: inout SplitMix64) -> (Command, AAModelOp.Kind?) {
    let key = aaKeySpace[Int(rng.next() % UInt64(aaKeySpace.count))]
    let small = bytes("\(rng.next() % 4)")
    let roll = rng.next() % 10
    if roll == 0 { return (.deleteMany([key]), .delete) }
    switch key.bytes[0] {
    case UInt8(ascii: "s"):
        let value = bytes("v\(rng.next() % 100)")
        return (.set(key, value), .set(value))
    case UInt8(ascii: "c"):
        if roll < 3 { let value = bytes("\(rng.next() % 50)"); return (.set(key, value), .set(value)) }
        let amount = Int64(rng.next() % 21) - 10
        return (.increment(key, by: amount), .increment(amount))
    case UInt8(ascii: "S"):
        let member = bytes("m\(small)")
        return roll < 6 ? (.collection(key, .setAdd([member])), .add(member))
            : (.collection(key, .setRemove([member])), .remove(member))
    default:
        let field = bytes("f\(small)")
        let value = bytes("v\(rng.next() % 100)")
        return roll < 6 ? (.collection(key, .hashSet([FieldValue(field, value)])), .hashSet(field, value))
            : (.collection(key, .hashDelete([field])), .hashDelete(field))
    }
}

/// The value of `key` a client reads on `machine`, in the model's shape.
func aaClientView(_ cluster: inout AATestCluster, _ key: Key, time: UInt64) -> [[UInt8]]? {
    switch key.bytes[0] {
    case UInt8(ascii: "s"), UInt8(ascii: "c"):
        return cluster.apply(.get(key), time: time).value.map { [$0] }
    case UInt8(ascii: "S"):
        return cluster.apply(.collection(key, .setMembers), time: time).elements
    default:
        return cluster.apply(.collection(key, .hashGetAll), time: time).elements
    }
}

@Suite("Active-active data types")
struct ActiveActiveTests {
    @Test(arguments: 0 ..< 80)
    func randomInterleavingsConvergeToTheModel(seed: UInt64) {
        var group = AATestGroup(count: 2 + Int(seed % 2), seed: seed &* 7919 &+ 1)
        group.runRandomly(steps: 120, writesInTen: 6) { group, c in
            let (command, kind) = aaRandomCommand(&group.rng)
            group.issue(c, command, as: kind)
        }
        group.settle()
        group.expectConverged(keys: aaKeySpace, "seed \(seed)")
    }
}

extension AATestGroup {
    /// `steps` random steps: `writesInTen` in ten a client write on a random cluster
    /// (`write(&group, cluster)`), the rest split between making a batch for a random
    /// link and delivering a held one (one time in three kept for a duplicate); then the
    /// leftover batches arrive late, in a random order, some twice.
    mutating func runRandomly(steps: Int, writesInTen: UInt64, write: (inout AATestGroup, Int) -> Void) {
        for _ in 0 ..< steps {
            let roll = rng.next() % 10
            if roll < writesInTen {
                write(&self, Int(rng.next() % UInt64(clusters.count)))
            } else if roll < 8 {
                let source = Int(rng.next() % UInt64(clusters.count))
                let target = (source + 1 + Int(rng.next() % UInt64(clusters.count - 1))) % clusters.count
                ship(from: source, to: target)
            } else if !inFlight.isEmpty {
                let k = Int(rng.next() % UInt64(inFlight.count))
                deliver(k, keep: rng.next() % 3 == 0)
            }
        }
        while !inFlight.isEmpty {
            let k = Int(rng.next() % UInt64(inFlight.count))
            deliver(k, keep: rng.next() % 4 == 0)
        }
    }

    /// Every cluster's state of `key`, modulo the metadata garbage collection may drop
    /// (each cluster collects on its own schedule): contexts filled through the union
    /// of the clusters' dot frontiers, empty parts dropped below the greatest stable stamp.
    func normalizedStates(of key: Key) -> [ActiveActiveKeyState] {
        var frontier: [ReplicaID: UInt64] = [:]
        var stable = ActiveActiveProgress(physical: 0, logical: 0, dot: 0)
        for cluster in clusters {
            frontier.merge(cluster.machine.activeActiveDotFrontier) { Swift.max($0, $1) }
            let candidate = cluster.machine.activeActiveStableStamp
            if (candidate.physical, candidate.logical) > (stable.physical, stable.logical) { stable = candidate }
        }
        return clusters.map { cluster in
            var state = cluster.machine.activeActiveState(of: key)
            state.fillContexts(through: frontier)
            state.dropStableEmptyParts(stable: stable)
            return state
        }
    }

    /// Expects every cluster to hold the same state of each key (modulo collectable
    /// metadata) and to show what the model predicts.
    mutating func expectConverged(keys: [Key], _ label: String) {
        for key in keys {
            let states = normalizedStates(of: key)
            for state in states.dropFirst() { #expect(state == states[0], "\(label): \(key) diverged") }
            let expected: [[UInt8]]?
            switch key.bytes[0] {
            case UInt8(ascii: "s"), UInt8(ascii: "c"): expected = model.string(key).map { [$0] }
            case UInt8(ascii: "S"): expected = model.set(key)
            default: expected = model.hash(key)
            }
            for c in clusters.indices {
                let seen = aaClientView(&clusters[c], key, time: tick())
                #expect(seen == expected, "\(label): \(key) on \(clusters[c].id): \(String(describing: seen)) != \(String(describing: expected))")
            }
        }
    }
}
