@testable import AegisKV
import AegisCRDT
import AegisRaft
import Testing

// Topologies (issue 17 item 3): validation, the forwarding rules, command 77 and
// snapshot section 7, and star/tree groups of in-process clusters.

private let star = ActiveActiveTopology(kind: .star, clusters: ["h": ["127.0.0.1:1"], "a": ["127.0.0.1:2"], "b": ["127.0.0.1:3"]],
                                        hub: "h")
private let tree = ActiveActiveTopology(kind: .tree, clusters: ["r": [], "m": [], "a": [], "b": []],
                                        links: [ActiveActiveLink("r", "m"), ActiveActiveLink("m", "a"), ActiveActiveLink("m", "b")])

private func code(_ topology: ActiveActiveTopology, for cluster: String = "a") -> ActiveActiveTopologyError.Code? {
    do {
        try topology.validate(for: cluster)
        return nil
    } catch {
        return error.code
    }
}

/// A group of in-process clusters linked by a topology: `pull(into:from:)` is one
/// batch of `source` for `target`, built with the forwarding rules and merged.
private struct TopologyGroup {
    var clusters: [String: AATestCluster] = [:]
    var time: UInt64 = 10

    init(_ topology: ActiveActiveTopology) {
        for id in topology.clusters.keys {
            var cluster = AATestCluster(id)
            let result = cluster.apply(.activeActiveTopology(.set(topology)), time: 2)
            #expect(result.error == nil, "\(String(describing: result.error))")
            clusters[id] = cluster
        }
    }

    mutating func write(_ id: String, _ command: Command) {
        time += 1
        let result = clusters[id]?.apply(command, time: time)
        #expect(result?.error == nil, "\(String(describing: result?.error))")
    }

    func batch(from source: String, to target: String) -> ActiveActiveBatch? {
        guard let from = clusters[source], let to = clusters[target] else { return nil }
        let after = to.cursor(for: source)
        return from.machine.activeActiveBatch(source: source, after: after, entries: Array(from.log.dropFirst(Int(after))),
                                              sourceCommit: UInt64(from.log.count), sourceTime: time, peer: target)
    }

    /// Merges `source`'s batch into `target`; the keys it carried.
    @discardableResult
    mutating func pull(into target: String, from source: String) -> [Key] {
        guard let batch = batch(from: source, to: target) else { return [] }
        time += 1
        let result = clusters[target]?.apply(.activeActiveBatch(batch), time: time)
        #expect(result?.error == nil, "\(String(describing: result?.error))")
        return batch.states.map(\.key)
    }

    /// Every link of `topology` pulled both ways, `rounds` times.
    mutating func exchange(_ topology: ActiveActiveTopology, rounds: Int = 3) {
        for _ in 0 ..< rounds {
            for link in topology.allLinks.sorted(by: { $0.description < $1.description }) {
                pull(into: link.first, from: link.second)
                pull(into: link.second, from: link.first)
            }
        }
    }

    func get(_ id: String, _ key: Key) -> [UInt8]? { clusters[id]?.machine.get(key, now: time)?.value }
}

@Suite("Active-active topologies")
struct ActiveActiveTopologyTests {
    // MARK: Validation: each rule can fail

    @Test func validTopologiesPass() {
        #expect(code(star) == nil && code(star, for: "h") == nil)
        #expect(code(tree) == nil && code(tree, for: "m") == nil)
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: ["a": [], "b": [], "c": []])) == nil)
    }

    @Test func eachRuleRefusesABadTopology() {
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: [:])) == .size)
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: ["a": [], "": []])) == .badName)
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: ["a": ["x", "x"]])) == .badName)
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: ["b": [], "c": []])) == .notMember)
        #expect(code(ActiveActiveTopology(kind: .star, clusters: ["a": [], "b": []], hub: "z")) == .badShape)
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: ["a": [], "b": []], links: [ActiveActiveLink("a", "b")])) == .badShape)
        var selfLink = tree
        selfLink.links.insert(ActiveActiveLink("a", "a"))
        #expect(code(selfLink) == .badLink)
        var unknown = tree
        unknown.links.insert(ActiveActiveLink("a", "zz"))
        #expect(code(unknown) == .unknownCluster)
        var apart = tree
        apart.links.remove(ActiveActiveLink("m", "b"))
        #expect(code(apart) == .notConnected)
        var cycle = tree
        cycle.links.insert(ActiveActiveLink("a", "b"))
        #expect(code(cycle) == .cycle)
        let many = Dictionary(uniqueKeysWithValues: (0 ... ActiveActiveTopology.maxClusters).map { ("c\($0)", [String]()) })
        #expect(code(ActiveActiveTopology(kind: .mesh, clusters: many), for: "c0") == .size)
    }

    @Test func changesKeepTheRules() throws {
        #expect(throws: ActiveActiveTopologyError.self) { try star.removing("h", local: "a") }  // the hub
        #expect(throws: ActiveActiveTopologyError.self) { try star.removing("a", local: "a") }  // itself
        #expect(throws: ActiveActiveTopologyError.self) { try tree.removing("m", local: "a") }  // splits the tree
        #expect(throws: ActiveActiveTopologyError.self) { try star.adding("c", addresses: [], via: "a", local: "h") }
        let added = try star.adding("c", addresses: ["127.0.0.1:4"], via: nil, local: "h")
        #expect(added.neighbours(of: "h") == ["a", "b", "c"] && added.neighbours(of: "c") == ["h"])
        let grown = try tree.adding("d", addresses: [], via: "a", local: "r")
        #expect(grown.neighbours(of: "a") == ["d", "m"])
        #expect(try grown.removing("d", local: "r") == tree)
    }

    // MARK: Forwarding rules

    @Test func forwardingNeverReturnsAChangeNorReachesItsOrigin() {
        // A star's hub forwards a spoke's change to the other spokes only.
        #expect(star.forwards(origin: "a", cameFrom: "a", to: "b", at: "h"))
        #expect(!star.forwards(origin: "a", cameFrom: "a", to: "a", at: "h"))
        // A local write goes to every neighbour; a spoke forwards nothing back.
        #expect(star.forwards(origin: "a", cameFrom: nil, to: "h", at: "a"))
        #expect(!star.forwards(origin: "b", cameFrom: "h", to: "h", at: "a"))
        // Never to the origin, even over another link.
        #expect(!tree.forwards(origin: "a", cameFrom: "m", to: "a", at: "r"))
        // A mesh ships only its own clients' writes.
        let mesh = ActiveActiveTopology(kind: .mesh, clusters: ["a": [], "b": [], "c": []])
        #expect(mesh.forwards(origin: "a", cameFrom: nil, to: "b", at: "a"))
        #expect(!mesh.forwards(origin: "b", cameFrom: "b", to: "c", at: "a"))
        #expect(star.neighbours(of: "a") == ["h"] && star.neighbours(of: "h") == ["a", "b"])
        #expect(tree.neighbours(of: "m") == ["a", "b", "r"])
    }

    // MARK: Command 77 and section 7

    @Test func command77RoundTrips() throws {
        for change in [ActiveActiveTopologyCommand.set(star), .set(tree), .add(cluster: "c", addresses: ["127.0.0.1:9"], via: "h"),
                       .add(cluster: "d", addresses: [], via: nil), .remove(cluster: "a")] {
            let command = Command.activeActiveTopology(change)
            let bytes = command.encoded()
            #expect(bytes[1] == 77 && bytes.count == command.encodedSize)
            #expect(try Command(decoding: bytes) == command)
            #expect(Command.peekType(bytes)?.isReplicationControl == true)
        }
    }

    @Test func batchesRoundTripWithRelayedReports() throws {
        let entry = ActiveActiveProgress(physical: 5, logical: 1, dot: 3)
        for progress in [[:], ["h": entry]] as [[String: ActiveActiveProgress]] {
            let batch = ActiveActiveBatch(source: "h", afterIndex: 1, lastIndex: 2, sourceCommit: 2, sourceTime: 9,
                                          states: [], progress: progress, relayed: ["a": ["a": entry, "b": entry], "b": [:]])
            #expect(try Command(decoding: Command.activeActiveBatch(batch).encoded()) == .activeActiveBatch(batch))
        }
    }

    @Test func malformedCommand77IsRefused() {
        let good = Command.activeActiveTopology(.set(tree)).encoded()
        var cases: [[UInt8]] = [Array(good.dropLast()), good + [0], [good[0], 77], [good[0], 77, 9], [good[0], 77, 0, 7]]
        var meshWithHub = [good[0], 77, 0, 0]
        meshWithHub.appendLengthPrefixed(Array("h".utf8))
        meshWithHub.appendVarint(1)
        meshWithHub.appendLengthPrefixed(Array("a".utf8))
        meshWithHub.appendVarint(0)
        meshWithHub.appendVarint(0)
        cases.append(meshWithHub)
        var reversedLink = [good[0], 77, 0, 2, 0, 2]
        for id in ["a", "b"] {
            reversedLink.appendLengthPrefixed(Array(id.utf8))
            reversedLink.appendVarint(0)
        }
        reversedLink.appendVarint(1)
        reversedLink.appendLengthPrefixed(Array("b".utf8))
        reversedLink.appendLengthPrefixed(Array("a".utf8))
        cases.append(reversedLink)
        var tooManyAddresses = [good[0], 77, 2]
        tooManyAddresses.removeLast()
        tooManyAddresses.append(1)
        tooManyAddresses.appendLengthPrefixed(Array("c".utf8))
        tooManyAddresses.appendVarint(17)
        for _ in 0 ..< 17 { tooManyAddresses.appendLengthPrefixed(Array("x:1".utf8)) }
        tooManyAddresses.append(0)
        cases.append(tooManyAddresses)
        for bytes in cases {
            #expect(throws: KVError.self) { try Command(decoding: bytes) }
        }
    }

    @Test func aRefusedChangeChangesNothing() {
        var hub = AATestCluster("h")
        hub.apply(.activeActiveTopology(.set(star)), time: 2)
        let before = hub.machine.digestHex()
        let revision = hub.machine.revision
        let refused = hub.apply(.activeActiveTopology(.remove(cluster: "h")), time: 3)
        guard case .activeActiveTopology? = refused.error else {
            Issue.record("expected a topology refusal, got \(String(describing: refused.error))")
            return
        }
        #expect(hub.machine.activeActiveTopology == star)
        // A topology without this cluster is refused too, and a tree with a cycle.
        #expect(hub.apply(.activeActiveTopology(.set(tree)), time: 3).error != nil)
        var cycle = star
        cycle.kind = .tree
        cycle.links = [ActiveActiveLink("h", "a"), ActiveActiveLink("a", "b"), ActiveActiveLink("b", "h")]
        #expect(hub.apply(.activeActiveTopology(.set(cycle)), time: 4).error != nil)
        #expect(hub.machine.activeActiveTopology == star)
        // No revision was used: nothing changed.
        #expect(hub.machine.revision == revision)
        #expect(before != hub.machine.digestHex())  // the applied index moved
    }

    @Test func section7RoundTripsThroughASnapshot() throws {
        var group = TopologyGroup(tree)
        group.write("a", .set("k", bytes("v")))
        guard let machine = group.clusters["m"]?.machine else { return }
        var restored = StateMachine(replica: ReplicaID("m"))
        try restored.restore(from: Snapshot(data: machine.snapshotData()))
        #expect(restored.activeActiveTopology == tree)
        #expect(restored.digestHex() == machine.digestHex())
        // Without a topology the section is left out, and restoring drops one.
        var plain = AATestCluster("m")
        plain.apply(.set("x", bytes("1")), time: 3)
        try restored.restore(from: Snapshot(data: plain.machine.snapshotData()))
        #expect(restored.activeActiveTopology == nil)
    }

    // MARK: Star and tree groups

    /// Spokes reach each other only through the hub, once: an INCR forwarded by the hub
    /// counts once everywhere, and the hub never sends a spoke's change back to it.
    @Test func starForwardsThroughTheHubWithoutDuplicates() {
        var group = TopologyGroup(star)
        group.write("a", .increment("c", by: 5))
        group.write("b", .increment("c", by: 7))
        group.write("a", .collection("s", .setAdd([bytes("x")])))
        group.write("b", .set("k", bytes("from-b")))
        // Nothing links a and b: b learns a's writes from the hub only.
        group.pull(into: "h", from: "a")
        #expect(group.batch(from: "h", to: "a")?.states.map(\.key) == [])  // not back where it came from
        let forwarded = group.pull(into: "b", from: "h")
        #expect(Set(forwarded) == ["c", "s"])
        group.exchange(star)
        for id in ["h", "a", "b"] {
            #expect(group.get(id, "c") == bytes("12"), "\(id)")
            #expect(group.get(id, "k") == bytes("from-b"), "\(id)")
        }
        let digests = Set(["h", "a", "b"].compactMap { group.clusters[$0]?.machine.activeActiveStates(for: ["c", "s", "k"]) })
        #expect(digests.count == 1)
        // More rounds change nothing (no double counting).
        group.exchange(star, rounds: 2)
        #expect(group.get("a", "c") == bytes("12") && group.get("b", "c") == bytes("12"))
    }

    /// A mesh forwards nothing (each cluster hears each origin directly), and a batch
    /// whose source is the receiver itself is refused.
    @Test func aMeshDoesNotForwardAndABatchFromItselfIsRefused() {
        let mesh = ActiveActiveTopology(kind: .mesh, clusters: ["a": [], "b": [], "c": []])
        var group = TopologyGroup(mesh)
        group.write("b", .set("k", bytes("from-b")))
        group.pull(into: "a", from: "b")
        #expect(group.batch(from: "a", to: "c")?.states.isEmpty == true)
        #expect(group.pull(into: "c", from: "b") == ["k"])
        guard var a = group.clusters["a"], let own = group.batch(from: "b", to: "a") else { return }
        var echoed = own
        echoed.source = "a"
        #expect(a.apply(.activeActiveBatch(echoed), time: 99).error != nil)
    }

    /// In a tree, a leaf's write is delivered to each other cluster exactly once (along
    /// the unique path) and never back to its origin, however many rounds run.
    @Test func treeDeliversEachChangeOnceAlongItsPath() {
        var group = TopologyGroup(tree)
        group.write("a", .set("k", bytes("from-a")))
        var deliveries: [String: Int] = [:]
        for _ in 0 ..< 4 {
            for link in tree.allLinks.sorted(by: { $0.description < $1.description }) {
                for (target, source) in [(link.first, link.second), (link.second, link.first)]
                where group.pull(into: target, from: source).contains("k") {
                    deliveries[target, default: 0] += 1
                }
            }
        }
        #expect(deliveries == ["m": 1, "r": 1, "b": 1])
        for id in ["r", "m", "a", "b"] { #expect(group.get(id, "k") == bytes("from-a"), "\(id)") }
    }

    /// In a tree of depth 2, a leaf's write reaches the other leaves and the root, and
    /// every cluster learns every other's progress (relayed): the stable stamp moves
    /// and a deleted set's tombstone part is collected everywhere.
    @Test func treeRelaysProgressSoGarbageCollectionCoversNonNeighbours() {
        var group = TopologyGroup(tree)
        group.write("a", .collection("S", .setAdd([bytes("m")])))
        group.exchange(tree)
        group.write("b", .deleteMany(["S"]))
        group.write("r", .increment("n", by: 1))
        group.exchange(tree, rounds: 4)
        for id in ["r", "m", "a", "b"] {
            guard let machine = group.clusters[id]?.machine else { continue }
            #expect(group.get(id, "n") == bytes("1"), "\(id)")
            #expect(Set(machine.activeActive.reports.keys).isSuperset(of: Set(["r", "m", "a", "b"]).subtracting([id])), "\(id)")
            #expect(machine.activeActiveStableStamp.physical > 0, "\(id)")
            #expect(machine.activeActiveMetadataSummary.emptyParts == 0, "\(id) still holds the deleted set's part")
        }
    }

    /// A cluster of the topology that never reports holds garbage collection back;
    /// removing it (command 77) lets it go on.
    @Test func removingAClusterReleasesGarbageCollection() {
        var topology = star
        topology.clusters["z"] = []
        var group = TopologyGroup(star)
        for id in ["h", "a", "b"] { group.clusters[id]?.apply(.activeActiveTopology(.set(topology)), time: 3) }
        group.write("a", .collection("S", .setAdd([bytes("m")])))
        group.exchange(star)
        group.write("a", .deleteMany(["S"]))
        group.exchange(star, rounds: 4)
        #expect(group.clusters["a"]?.machine.activeActiveStableStamp.physical == 0)
        #expect(group.clusters["a"]?.machine.activeActiveMetadataSummary.emptyParts == 1)
        for id in ["h", "a", "b"] { group.clusters[id]?.apply(.activeActiveTopology(.remove(cluster: "z")), time: group.time) }
        group.write("b", .set("poke", bytes("1")))
        group.exchange(star, rounds: 4)
        #expect(group.clusters["a"]?.machine.activeActiveStableStamp.physical ?? 0 > 0)
        #expect(group.clusters["a"]?.machine.activeActiveMetadataSummary.emptyParts == 0)
    }

    /// The same writes and exchanges give the same states and digests (the forwarding
    /// and relays depend only on the logs).
    @Test func starExchangeIsDeterministic() {
        func run() -> [String] {
            var group = TopologyGroup(star)
            for step in 0 ..< 30 {
                let id = ["h", "a", "b"][step % 3]
                group.write(id, .increment(Key(stringLiteral: "c\(step % 4)"), by: Int64(step)))
                if step % 5 == 0 { group.exchange(star, rounds: 1) }
            }
            group.exchange(star)
            return ["h", "a", "b"].map { group.clusters[$0]?.machine.digestHex() ?? "" }
        }
        #expect(run() == run())
    }
}
