@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// A topology change made at one cluster reaches the whole group (issue 17 item 3):
// versions, adoption from batches, the codecs that carry them.

private let star = ActiveActiveTopology(kind: .star, clusters: ["h": ["127.0.0.1:1"], "a": ["127.0.0.1:2"], "b": ["127.0.0.1:3"]],
                                        hub: "h")

/// A star of in-process clusters started from the same file (`.seed`, version zero).
private struct SeededStar {
    var clusters: [String: AATestCluster] = [:]
    var time: UInt64 = 10

    init() {
        for id in star.clusters.keys {
            var cluster = AATestCluster(id)
            #expect(cluster.apply(.activeActiveTopology(.seed(star)), time: 2).error == nil)
            clusters[id] = cluster
        }
    }

    mutating func apply(_ id: String, _ command: Command) -> CommandResult? {
        time += 1
        return clusters[id]?.apply(command, time: time)
    }

    /// One batch of `source` for `target`, merged.
    mutating func pull(into target: String, from source: String) {
        guard let from = clusters[source], let to = clusters[target] else { return }
        let after = to.cursor(for: source)
        let batch = from.machine.activeActiveBatch(source: source, after: after, entries: Array(from.log.dropFirst(Int(after))),
                                                   sourceCommit: UInt64(from.log.count), sourceTime: time, peer: target)
        let result = apply(target, .activeActiveBatch(batch))
        #expect(result?.error == nil, "\(String(describing: result?.error))")
    }

    /// The star's links pulled both ways: spokes hear only the hub.
    mutating func exchange() {
        for spoke in ["a", "b"] {
            pull(into: "h", from: spoke)
            pull(into: spoke, from: "h")
        }
    }

    func topology(_ id: String) -> ActiveActiveTopology? { clusters[id]?.machine.activeActiveTopology }
    func version(_ id: String) -> ActiveActiveTopologyVersion? { clusters[id]?.machine.activeActiveTopologyVersion }
}

@Suite("Active-active topology versions")
struct ActiveActiveTopologyVersionTests {
    /// A starting topology has version zero and is not shipped; `aegis aa add` at the
    /// hub gives a new version, the spokes adopt it with the hub's next batch (d is
    /// then a member everywhere, for garbage collection), and `remove` the same way.
    @Test func aChangeAtTheHubReachesEverySpoke() throws {
        var group = SeededStar()
        #expect(group.version("a") == .zero && group.version("h") == .zero)
        group.exchange()
        #expect(group.topology("a") == star, "a seed is not shipped")
        #expect(group.apply("h", .activeActiveTopology(.add(cluster: "d", addresses: ["127.0.0.1:4"], via: nil)))?.error == nil)
        let added = try #require(group.version("h"))
        #expect(!added.isZero && added.cluster == "h")
        group.exchange()
        for id in ["a", "b"] {
            #expect(group.topology(id)?.clusters["d"] == ["127.0.0.1:4"], "\(id) adopted the hub's change")
            #expect(group.version(id) == added)
        }
        #expect(group.apply("a", .activeActiveTopology(.remove(cluster: "d")))?.error == nil)
        let removed = try #require(group.version("a"))
        #expect(removed > added)
        group.exchange()
        group.exchange()
        for id in ["h", "a", "b"] {
            #expect(group.topology(id) == star, "\(id) adopted a's removal")
            #expect(group.version(id) == removed)
        }
    }

    /// Only a higher version that lists the receiver is adopted; a seed never replaces
    /// a topology.
    @Test func olderForeignOrSeededTopologiesAreIgnored() {
        var hub = AATestCluster("h")
        hub.apply(.activeActiveTopology(.set(star)), time: 5)
        let current = hub.machine.activeActiveTopologyVersion
        var other = star
        other.clusters["x"] = []
        let older = ActiveActiveTopologyVersion(physical: current.physical - 1, logical: 0, cluster: "a")
        let olderAdopted = hub.machine.adoptActiveActiveTopology(ActiveActiveVersionedTopology(topology: other, version: older))
        #expect(!olderAdopted)
        var withoutHub = star
        withoutHub.clusters["h"] = nil
        withoutHub.hub = "a"
        let newer = ActiveActiveTopologyVersion(physical: current.physical + 1, logical: 0, cluster: "a")
        let foreignAdopted = hub.machine.adoptActiveActiveTopology(ActiveActiveVersionedTopology(topology: withoutHub, version: newer))
        #expect(!foreignAdopted)
        #expect(hub.machine.activeActiveTopology == star && hub.machine.activeActiveTopologyVersion == current)
        let newerAdopted = hub.machine.adoptActiveActiveTopology(ActiveActiveVersionedTopology(topology: other, version: newer))
        #expect(newerAdopted)
        #expect(hub.machine.activeActiveTopology == other)
        hub.apply(.activeActiveTopology(.seed(star)), time: 9)
        #expect(hub.machine.activeActiveTopology == other && hub.machine.activeActiveTopologyVersion == newer)
        // Versions order by physical, logical, then cluster.
        #expect(ActiveActiveTopologyVersion(physical: 2, logical: 0, cluster: "a") < .init(physical: 2, logical: 0, cluster: "b"))
        #expect(ActiveActiveTopologyVersion(physical: 2, logical: 1, cluster: "a") > .init(physical: 2, logical: 0, cluster: "b"))
    }

    /// A batch's topology and section 7's version survive their codecs; a batch's
    /// topology with version zero, or a version naming no cluster, is refused.
    @Test func versionsRoundTripAndBadOnesAreRefused() throws {
        let version = ActiveActiveTopologyVersion(physical: 1_700_000_000_000, logical: 3, cluster: "h")
        let batch = ActiveActiveBatch(source: "h", afterIndex: 1, lastIndex: 2, sourceCommit: 2, sourceTime: 9, states: [],
                                      topology: ActiveActiveVersionedTopology(topology: star, version: version))
        let encoded = Command.activeActiveBatch(batch).encoded()
        #expect(try Command(decoding: encoded) == .activeActiveBatch(batch))
        let seed = Command.activeActiveTopology(.seed(star))
        #expect(try Command(decoding: seed.encoded()) == seed)
        var zero = Command.activeActiveBatch(ActiveActiveBatch(source: "h", afterIndex: 1, lastIndex: 2, sourceCommit: 2,
                                                               sourceTime: 9, states: [])).encoded()
        zero += [0, 0]  // empty progress vector and report list
        zero.appendTopologyVersion(.zero)
        star.append(to: &zero)
        #expect(throws: KVError.self) { try Command(decoding: zero) }
        // Progress, reports, then a version 5.0 with an empty cluster name.
        var nameless = Command.activeActiveBatch(ActiveActiveBatch(source: "h", afterIndex: 1, lastIndex: 2, sourceCommit: 2,
                                                                   sourceTime: 9, states: [])).encoded() + [0, 0, 5, 0, 0]
        star.append(to: &nameless)
        #expect(throws: KVError.self) { try Command(decoding: nameless) }

        var hub = AATestCluster("h")
        hub.apply(.activeActiveTopology(.add(cluster: "c", addresses: [], via: nil)), time: 4)
        var restored = StateMachine(replica: ReplicaID("h"))
        try restored.restore(from: Snapshot(data: hub.machine.snapshotData()))
        #expect(restored.activeActiveTopologyVersion == hub.machine.activeActiveTopologyVersion)
        #expect(!restored.activeActiveTopologyVersion.isZero)
        #expect(restored.digestHex() == hub.machine.digestHex())
    }
}
