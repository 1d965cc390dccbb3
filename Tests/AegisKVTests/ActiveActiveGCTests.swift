@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// Bounded metadata (item 5 of issue 17): garbage collection under causal stability,
// through the same in-process group of clusters as ActiveActiveTests.

/// The metadata of every cluster of the group, summed.
private func totals(_ group: AATestGroup) -> ActiveActiveMetadataStats {
    var sum = ActiveActiveMetadataStats(keys: 0, tombstones: 0, emptyParts: 0, contextDots: 0, bytes: 0, stableMillis: 0)
    for cluster in group.clusters {
        let stats = cluster.machine.activeActiveMetadataStats
        sum.keys += stats.keys
        sum.tombstones += stats.tombstones
        sum.emptyParts += stats.emptyParts
        sum.contextDots += stats.contextDots
        sum.bytes += stats.bytes
    }
    return sum
}

/// One churn step on cluster `c`: add, remove, delete and re-add on a few fixed sets and
/// hashes, and a fresh set key created and deleted.
private func churn(_ group: inout AATestGroup, step: Int) {
    let c = Int(group.rng.next() % UInt64(group.clusters.count))
    let member = bytes("m\(group.rng.next() % 3)")
    let set: Key = ["S1", "S2"][Int(group.rng.next() % 2)]
    let hash: Key = ["H1", "H2"][Int(group.rng.next() % 2)]
    switch group.rng.next() % 7 {
    case 0: group.issue(c, .collection(set, .setAdd([member])), as: .add(member))
    case 1: group.issue(c, .collection(set, .setRemove([member])), as: .remove(member))
    case 2: group.issue(c, .deleteMany([set]), as: .delete)
    case 3:
        let value = bytes("v\(step)")
        group.issue(c, .collection(hash, .hashSet([FieldValue(member, value)])), as: .hashSet(member, value))
    case 4: group.issue(c, .collection(hash, .hashDelete([member])), as: .hashDelete(member))
    case 5: group.issue(c, .deleteMany([hash]), as: .delete)
    default:
        let fresh = Key(stringLiteral: "St\(step)")
        group.issue(c, .collection(fresh, .setAdd([member])), as: .add(member))
        group.issue(c, .deleteMany([fresh]), as: .delete)
    }
}

/// Every cluster ships to every other once (each batch delivered at once).
private func exchange(_ group: inout AATestGroup) {
    for source in group.clusters.indices {
        for target in group.clusters.indices where target != source {
            group.ship(from: source, to: target)
            group.deliver(group.inFlight.count - 1, keep: false)
        }
    }
}

@Suite("Active-active garbage collection")
struct ActiveActiveGCTests {
    /// 3,000 churn steps across three clusters, exchanging every 10 steps: the metadata
    /// stays within a bound set by the key space and one exchange window (not by the
    /// churn), and the clusters still converge to the model.
    @Test func metadataStaysBoundedUnderChurn() {
        var group = AATestGroup(count: 3, seed: 17)
        var early: ActiveActiveMetadataStats?
        var peak = ActiveActiveMetadataStats(keys: 0, tombstones: 0, emptyParts: 0, contextDots: 0, bytes: 0, stableMillis: 0)
        for step in 1 ... 3_000 {
            churn(&group, step: step)
            guard step % 10 == 0 else { continue }
            exchange(&group)
            let now = totals(group)
            if step == 300 { early = now }
            if step > 300 {
                peak.keys = max(peak.keys, now.keys)
                peak.contextDots = max(peak.contextDots, now.contextDots)
                peak.bytes = max(peak.bytes, now.bytes)
                peak.tombstones = max(peak.tombstones, now.tombstones)
            }
        }
        exchange(&group)
        exchange(&group)
        let final = totals(group)
        let start = early ?? final
        print("metadata after 300 steps: \(start); peak after: \(peak); final: \(final)")
        // Per cluster at most the 4 fixed keys and the fresh keys of one exchange
        // window (10 steps) have metadata: about 430 fresh keys were created and
        // deleted, and none is left behind once stable.
        #expect(peak.keys <= 3 * (4 + 10), "keys: \(peak.keys)")
        #expect(peak.tombstones <= 3 * (4 + 10), "tombstones: \(peak.tombstones)")
        #expect(final.tombstones <= 3 * 4, "tombstones: \(final.tombstones)")
        // Out-of-order dots: at most those of one exchange window; none once quiet.
        #expect(peak.contextDots <= 3 * 40, "context dots: \(peak.contextDots)")
        #expect(final.contextDots == 0, "context dots: \(final.contextDots)")
        #expect(peak.bytes <= 8_192, "bytes: \(peak.bytes)")
        var keys = ["S1", "S2", "H1", "H2"].map { Key(stringLiteral: $0) }
        keys += stride(from: 7, through: 3_000, by: 97).map { Key(stringLiteral: "St\($0)") }
        group.settle()
        group.expectConverged(keys: keys, "churn")
    }

    /// Collection is decided at apply from logged data: a node restored from a snapshot
    /// taken mid-churn, then applying the same entries, collects exactly what the node
    /// that never restarted collects (same metadata, same digest).
    @Test func aRestoredNodeCollectsTheSame() throws {
        var group = AATestGroup(count: 3, seed: 29)
        var restored: StateMachine?
        var from = 0
        for step in 1 ... 1_200 {
            churn(&group, step: step)
            if step % 10 == 0 { exchange(&group) }
            if step == 600 {
                var node = StateMachine(replica: "a")
                try node.restore(from: Snapshot(data: group.clusters[0].machine.snapshotData()))
                restored = node
                from = group.clusters[0].log.count
            }
        }
        exchange(&group)
        guard var node = restored else { return }
        for entry in group.clusters[0].log.dropFirst(from) { node.apply(entry) }
        let original = group.clusters[0].machine
        #expect(node.activeActive == original.activeActive)
        #expect(node.digest() == original.digest())
        #expect(original.activeActiveMetadataStats.keys < 4 + 10, "\(original.activeActiveMetadataStats)")
    }

    /// A batch's progress vector survives its codec and the snapshot section.
    @Test func progressVectorsRoundTrip() throws {
        var group = AATestGroup(count: 2, seed: 3)
        group.issue(0, .collection("S1", .setAdd([bytes("x")])), as: .add(bytes("x")))
        group.issue(1, .collection("S1", .setAdd([bytes("y")])), as: .add(bytes("y")))
        exchange(&group)
        exchange(&group)
        let batch = group.clusters[0].batch(after: 0, time: 99)
        #expect(batch.progress["a"] != nil && batch.progress["b"] != nil)
        let decoded = try ActiveActiveBatch(decodingBody: batch.encodedBody())
        #expect(decoded == batch)
        let machine = group.clusters[1].machine
        let state = machine.activeActive
        #expect(!state.reports.isEmpty && !state.merged.isEmpty)
        let section = state.snapshotSection { machine.value(for: $0) }
        let restored = try ActiveActiveState(section: section)
        // Every state comes back whole (the restore compacts them against the tables).
        #expect(restored.snapshotSection { _ in nil } == section)
        #expect(restored.cursors == state.cursors && restored.merged == state.merged && restored.reports == state.reports)
        #expect(restored.keys.count == state.keys.count)
        // A vector out of order is refused.
        var body = ActiveActiveBatch(source: "a", afterIndex: 0, lastIndex: 0, sourceCommit: 0, sourceTime: 0,
                                     states: []).encodedBody()
        body.appendVarint(2)
        for origin in ["b", "a"] {
            body.appendLengthPrefixed(Array(origin.utf8))
            body += [1, 0, 1]
        }
        #expect(throws: KVError.self) { try ActiveActiveBatch(decodingBody: body) }
    }
}
