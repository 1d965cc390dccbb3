@testable import AegisReplication
import AegisCluster
import AegisKV
import AegisRaft
import AegisTransport
import Foundation
import Testing

@Suite struct ClusterViewTests {
    let conf = ConfState(voters: ["n1", "n2", "n3"])

    func view(_ time: TickTime) throws -> ClusterView {
        // Reports every 10 ticks (100 ms), down after 100 ticks (1 s).
        try ClusterView(localID: "n1", heartbeat: .milliseconds(100), failureTimeout: .seconds(1), clock: time)
    }

    /// Advances the view's time, hearing from `alive` at every report interval.
    func run(_ v: inout ClusterView, _ time: TickTime, ticks: Int, hearing alive: [NodeID]) {
        for _ in 0 ..< ticks {
            time.ticks += 1
            if time.ticks % 10 == 0 {
                for id in alive { v.heard(from: id) }
                v.checkFailures()
            }
        }
    }

    @Test func test_clusterView_silentPeerGoesSuspectThenDown_quorumKeptWithTwo() throws {
        let time = TickTime(tickInterval: .milliseconds(10))
        var v = try view(time)
        v.sync(conf: conf, addresses: [:], leader: "n1", term: 2)
        #expect(v.status(of: "n2") == .starting && v.cluster.state == .forming)
        run(&v, time, ticks: 50, hearing: ["n2", "n3"])
        #expect(v.status(of: "n2") == .healthy && v.status(of: "n3") == .healthy)
        #expect(v.cluster.stats().state == .healthy && v.cluster.stats().hasQuorum)
        run(&v, time, ticks: 60, hearing: ["n2"])
        #expect(v.status(of: "n3") == .suspect)
        #expect(v.cluster.stats().state == .degraded)
        run(&v, time, ticks: 100, hearing: ["n2"])
        #expect(v.status(of: "n3") == .down)
        #expect(v.silence(of: "n3").map { $0 >= .seconds(1) } == true)
        #expect(v.cluster.stats().hasQuorum && v.cluster.stats().downNodes == 1)
        // Both peers silent: no quorum.
        run(&v, time, ticks: 120, hearing: [])
        #expect(v.cluster.stats().state == .noQuorum && !v.cluster.stats().hasQuorum)
        // A report brings a peer back.
        v.received(PeerStatusReport(term: 2, commitIndex: 5, appliedIndex: 5, lastIndex: 5), from: "n2", leader: "n1")
        #expect(v.status(of: "n2") == .healthy && v.cluster.stats().hasQuorum)
    }

    @Test func test_clusterView_leavingThenLeft_followsMembership() throws {
        let time = TickTime(tickInterval: .milliseconds(10))
        var v = try view(time)
        v.sync(conf: conf, addresses: ["n2": MemberAddress(peer: "127.0.0.1:9002")], leader: "n1", term: 2)
        #expect(v.cluster.node("n2")?.endpoint == "127.0.0.1:9002")
        run(&v, time, ticks: 20, hearing: ["n2", "n3"])
        v.pendingRemovals.insert("n3")
        v.sync(conf: conf, addresses: [:], leader: "n1", term: 2)
        #expect(v.status(of: "n3") == .leaving)
        // Heartbeats do not undo leaving.
        run(&v, time, ticks: 20, hearing: ["n2", "n3"])
        #expect(v.status(of: "n3") == .leaving)
        v.sync(conf: ConfState(voters: ["n1", "n2"]), addresses: [:], leader: "n1", term: 2)
        #expect(v.status(of: "n3") == .left && v.cluster.node("n3") == nil && v.departed.map(\.id) == ["n3"])
        #expect(v.cluster.stats().totalNodes == 2 && v.cluster.stats().votingNodes == 2)
        // A joint configuration's outgoing-only voter is leaving.
        var joint = ConfState(voters: ["n1"])
        joint.outgoingVoters = ["n1", "n2"]
        v.sync(conf: joint, addresses: [:], leader: "n1", term: 2)
        #expect(v.status(of: "n2") == .leaving)
    }

    @Test func test_clusterView_followerLearnsMatchAndLagFromTheLeadersReport() throws {
        let time = TickTime(tickInterval: .milliseconds(10))
        var v = try view(time)
        v.sync(conf: conf, addresses: [:], leader: "n2", term: 4)
        let report = PeerStatusReport(term: 4, commitIndex: 90, appliedIndex: 90, lastIndex: 100,
                                      progress: ["n1": 97, "n2": 100, "n3": 60])
        v.received(report, from: "n2", leader: "n2")
        #expect(v.leaderProgress(of: "n3", leader: "n2").map { $0.leaderLast - $0.match } == 40)
        // A report from a node that is not the leader is not taken as the leader's view.
        v.received(PeerStatusReport(term: 4, commitIndex: 1, appliedIndex: 1, lastIndex: 1, progress: ["n3": 1]),
                   from: "n3", leader: "n2")
        #expect(v.leaderProgress(of: "n3", leader: "n2")?.match == 60)
        #expect(v.leaderProgress(of: "n3", leader: "n3") == nil)
    }
}
