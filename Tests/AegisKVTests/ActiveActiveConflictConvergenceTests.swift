@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// Random interleavings (delays, reordering, duplicates) across 2 and 3 clusters of
// string writes under every strategy: every cluster ends with the same state and the
// same value of each key; under `priority`, the value the model predicts (the best
// ranked of the writes no other write saw); under `manual`, the same keys queued.

private let conflictKeys: [Key] = ["l:1", "p:1", "p:2", "v:1", "x:1", "m:1", "m:2"]

extension AATestGroup {
    /// A group whose clusters all use the tests' strategy table.
    static func withStrategies(count: Int, seed: UInt64) -> AATestGroup {
        var group = AATestGroup(count: count, seed: seed)
        for c in group.clusters.indices {
            group.clusters[c].machine.register(aaConcat)
            let result = group.clusters[c].apply(
                .activeActiveConflict(.setStrategies(ActiveActiveConflictSettings(rules: aaConflictRules))), time: 2)
            #expect(result.error == nil)
        }
        return group
    }

    /// A random string write (or, one time in eight, a delete; under `manual`, one time
    /// in four the resolution of an open conflict) on cluster `c`; notes in `issuers`
    /// which cluster issued the model's operation, when it took effect.
    mutating func randomConflictWrite(on c: Int, issuers: inout [Int: String]) {
        let key = conflictKeys[Int(rng.next() % UInt64(conflictKeys.count))]
        let roll = rng.next() % 8
        let id = model.ops.count
        if key.bytes[0] == UInt8(ascii: "m"), roll < 2,
           let conflict = clusters[c].machine.activeActiveOpenConflicts.first(where: { $0.key == key }) {
            let pick = Int(rng.next() % UInt64(conflict.versions.count))
            let kind: AAModelOp.Kind = conflict.versions[pick].value.map { .set($0) } ?? .delete
            issue(c, .activeActiveConflict(.resolve(key: key, id: conflict.id, choice: .pick(pick))), as: kind)
        } else if roll == 7 {
            issue(c, .deleteMany([key]), as: .delete)
        } else {
            let value = bytes("\(clusters[c].id)\(rng.next() % 100)")
            issue(c, .set(key, value), as: .set(value))
        }
        if model.ops.count > id { issuers[id] = clusters[c].id }
    }

    /// The model's value of a `priority` key: of the register writes no other write of
    /// the key saw, the one from the best-ranked cluster (at most one per cluster).
    func priorityModel(_ key: Key, order: [String], issuers: [Int: String]) -> [UInt8]? {
        let writes = model.ops(of: key).filter(\.isRegisterWrite)
        let maximal = writes.filter { op in !writes.contains { $0.seen.contains(op.id) } }
        let rank = { (op: AAModelOp) in order.firstIndex(of: issuers[op.id] ?? "") ?? order.count }
        let best = maximal.min { rank($0) < rank($1) }
        if case .set(let value)? = best?.kind { return value }
        return nil
    }
}

@Suite("Active-active conflict convergence")
struct ActiveActiveConflictConvergenceTests {
    @Test(arguments: 0 ..< 60)
    func randomInterleavingsConverge_underEveryStrategy(seed: UInt64) {
        var group = AATestGroup.withStrategies(count: 2 + Int(seed % 2), seed: seed &* 104_729 &+ 3)
        var issuers: [Int: String] = [:]
        group.runRandomly(steps: 100, writesInTen: 5) { group, c in group.randomConflictWrite(on: c, issuers: &issuers) }
        group.settle()
        // Every node of a cluster decides the same: a node replaying the cluster's log
        // holds the same queue, trail and states.
        for cluster in group.clusters {
            var replica = StateMachine(replica: cluster.machine.replica)
            replica.register(aaConcat)
            for entry in cluster.log { replica.apply(entry) }
            #expect(replica.activeActiveConflicts == cluster.machine.activeActiveConflicts, "seed \(seed): \(cluster.id)'s replay")
            #expect(replica.digest() == cluster.machine.digest(), "seed \(seed): \(cluster.id)'s replay digest")
        }
        for key in conflictKeys {
            let states = group.clusters.map { $0.machine.activeActiveState(of: key) }
            for state in states.dropFirst() { #expect(state == states[0], "seed \(seed): \(key) diverged") }
            let values = group.clusters.map { $0.machine.value(for: key) }
            #expect(Set(values.map { $0.map { hexString($0) } ?? "-" }).count == 1, "seed \(seed): \(key) reads differ")
            if key.bytes[0] == UInt8(ascii: "p") {
                #expect(values[0] == group.priorityModel(key, order: ["c", "b", "a"], issuers: issuers), "seed \(seed): \(key) is not the model's")
            }
            let queued = group.clusters.map { $0.machine.activeActiveOpenConflicts.contains { $0.key == key } }
            #expect(Set(queued).count == 1, "seed \(seed): \(key) queued on some clusters only")
            let versions = states[0].string?.versions?.count ?? 0
            #expect(versions <= group.clusters.count, "seed \(seed): \(key) has \(versions) versions")
            if key.bytes[0] == UInt8(ascii: "m") { #expect(queued[0] == (versions > 1), "seed \(seed): \(key)") }
        }
    }
}

extension ActiveActiveConflictConvergenceTests {
    /// Churn under the strategies: the versions and contexts of a key stay within one per
    /// cluster, the queue within the keys, the trail within its bound, and the encoded
    /// metadata does not grow with the number of writes.
    @Test func churn_keepsTheConflictMetadataBounded() {
        var group = AATestGroup.withStrategies(count: 3, seed: 42)
        var issuers: [Int: String] = [:]
        var sizes: [Int] = []
        for step in 1 ... 3_000 {
            let roll = group.rng.next() % 10
            if roll < 5 {
                group.randomConflictWrite(on: Int(group.rng.next() % 3), issuers: &issuers)
            } else {
                let source = Int(group.rng.next() % 3)
                group.ship(from: source, to: (source + 1 + Int(group.rng.next() % 2)) % 3)
                group.deliver(group.inFlight.count - 1, keep: false)
            }
            guard step % 500 == 0 else { continue }
            for cluster in group.clusters {
                for key in conflictKeys {
                    let string = cluster.machine.activeActiveState(of: key).string
                    #expect((string?.versions?.count ?? 0) <= 3 && (string?.context.count ?? 0) <= 3, "\(key) at \(step)")
                }
                #expect(cluster.machine.activeActiveOpenConflicts.count <= 2)
                #expect(cluster.machine.activeActiveAudit(limit: .max).count <= ActiveActiveConflictSettings.defaultAuditMaxEntries)
            }
            sizes.append(group.clusters.map { $0.machine.activeActiveMetadataStats.bytes }.max() ?? 0)
        }
        // Seven keys, three clusters: a few hundred bytes, after 500 writes as after 3,000.
        let bounded = sizes.allSatisfy { $0 < 2_000 }
        #expect(bounded, "metadata bytes at each 500 steps: \(sizes)")
        group.settle()
        let states = conflictKeys.map { key in group.clusters.map { $0.machine.activeActiveState(of: key) } }
        for (key, each) in zip(conflictKeys, states) { #expect(Set(each).count == 1, "\(key) diverged") }
    }
}
