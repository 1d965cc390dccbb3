import AegisCluster
import AegisKV
import AegisRaft
import AegisReplication
import Foundation
import Testing

@Suite(.serialized) struct GracefulStopTests {
    /// Every node reports every member healthy, and a follower reports the others'
    /// match and lag (from the leader's reports); a stopped member goes down in the
    /// view of a follower too, not only the leader's.
    @Test func test_runtime_everyNodeSeesEveryMember_followersKnowMatchAndLag() async throws {
        let dir = temporaryDirectory("view")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        let leader = try await cluster.waitForLeader()
        _ = try await write(try #require(cluster.members[leader].runtime), "k", "v")
        let followers = cluster.members.indices.filter { $0 != leader }
        try await waitUntil("every node sees every member healthy, with match and lag") {
            cluster.members.allSatisfy { member in
                guard let status = member.runtime?.status else { return false }
                return status.members.count == 3 && status.members.allSatisfy { $0.health == .healthy && $0.match != nil && $0.lag != nil }
                    && status.cluster?.state == .healthy
            }
        }
        await cluster.stop(followers[1])
        let observer = try #require(cluster.members[followers[0]].runtime)
        let stoppedID = cluster.members[followers[1]].id
        try await waitUntil("the other follower sees the stopped one down") {
            observer.status.members.first { $0.id == stoppedID }?.health == .down
        }
        // Two of three voters healthy: quorum, degraded (waited for: under load the detector
        // may suspect the leader for a moment too).
        try await waitUntil("the other follower sees a degraded cluster with quorum") {
            observer.status.cluster?.hasQuorum == true && observer.status.cluster?.state == .degraded
        }
        await cluster.shutdown()
    }

    /// A leader stopped gracefully hands leadership to another voter, which leads at
    /// once (no election timeout); writes through a follower during the handover all
    /// succeed (re-forwarded to the new leader when the old one refuses them).
    @Test func test_runtime_gracefulStopHandsLeadershipOver_writesThroughFollowersDoNotFail() async throws {
        let dir = temporaryDirectory("handover")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var raft = NodeConfiguration.defaultRaft
        raft.electionTimeout = 100  // 1 s: an election after a plain stop would take over 1 s
        raft.heartbeatInterval = 10
        let cluster = try LocalCluster(count: 3, directory: dir, raft: raft)
        try await cluster.start()
        let leader = try await cluster.waitForLeader()
        let follower = try #require(cluster.members.indices.first { $0 != leader })
        let through = try #require(cluster.members[follower].runtime)
        _ = try await write(through, "warm", "up")
        let clock = ContinuousClock()
        let writes = Task {
            var failures: [String] = []
            var count = 0
            let end = clock.now.advanced(by: .seconds(2))
            while clock.now < end {
                do { _ = try await through.execute(.set(Key("k\(count % 10)"), value("\(count)"))) } catch {
                    failures.append("\(error)")
                }
                count += 1
            }
            return (count, failures)
        }
        try await Task.sleep(for: .milliseconds(300))
        let stopping = clock.now
        await cluster.stop(leader, gracefully: true)
        let stopTook = clock.now - stopping
        let newLeader = try await cluster.waitForLeader(timeout: .seconds(5))
        let handedOver = clock.now - stopping
        let (count, failures) = await writes.value
        #expect(newLeader != leader)
        #expect(failures.isEmpty, "failed writes: \(failures.prefix(3))")
        #expect(count > 10)
        // The handover completed: a stop that times out takes the whole handover timeout (2 s).
        #expect(stopTook < .seconds(2), "the stop took \(stopTook)")
        // Not a speed check but which mechanism ran: without a handover the others elect
        // a leader only after an election timeout of silence (1 s at least here).
        #expect(handedOver < .seconds(1), "a new leader was known only after \(handedOver): an election, not a handover")
        print("graceful stop: stop took \(stopTook), new leader known everywhere after \(handedOver), \(count) writes, \(failures.count) failed")
        await cluster.shutdown()
    }

    /// `handOverLeadership()` (what `aegis serve` runs before closing anything): the
    /// leader hands over and keeps running as a follower — writes through it succeed
    /// (forwarded to the new leader) — and a graceful stop right after still lingers a
    /// linger from the step-down, so that requests the others forwarded to it before
    /// they learnt of the change are answered. On a follower it does nothing.
    @Test func test_runtime_handOverLeadershipFirst_keepsServing_thenStopLingersFromTheStepDown() async throws {
        let dir = temporaryDirectory("handover-first")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var raft = NodeConfiguration.defaultRaft
        raft.electionTimeout = 100  // linger: half of it, 50 ticks of 10 ms
        raft.heartbeatInterval = 10
        let cluster = try LocalCluster(count: 3, directory: dir, raft: raft)
        try await cluster.start()
        let leader = try await cluster.waitForLeader()
        let old = try #require(cluster.members[leader].runtime)
        let follower = try #require(cluster.members.indices.first { $0 != leader })
        #expect(await cluster.members[follower].runtime?.handOverLeadership() == false)
        _ = try await write(old, "before", "1")
        let clock = ContinuousClock()
        #expect(await old.handOverLeadership())
        let handedOver = clock.now
        #expect(old.status.role != .leader)
        let newLeader = try await cluster.waitForLeader(timeout: .seconds(5))
        #expect(newLeader != leader)
        // Still running: a write through the old leader is forwarded to the new one.
        _ = try await old.execute(.set(Key("after"), value("2")))
        #expect(old.status.running)
        await cluster.stop(leader, gracefully: true)
        let lingered = clock.now - handedOver
        // The linger is 50 ticks (500 ms) from the step-down; a stop "at once" takes a few
        // ms. Ticks that a loaded machine delayed fire in a burst, so the wall time of 50
        // ticks can be shorter: the bound is 200 ms (seen: 314 ms under load, 19 ms without
        // the linger).
        #expect(lingered >= .milliseconds(200), "the stop ended \(lingered) after the handover: it did not linger")
        #expect(lingered < .seconds(2), "the stop took \(lingered): the handover timeout, not the linger")
        let through = try #require(cluster.members[newLeader].runtime)
        #expect(try await through.read(["before", "after"]).map { $0?.value } == [value("1"), value("2")])
        await cluster.shutdown()
    }
}

/// Polls `condition` every 20 ms for up to `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting until \(what)")
    throw ReplicationError.timeout
}
