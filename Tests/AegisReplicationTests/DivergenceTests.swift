import AegisKV
import AegisRaft
import AegisReplication
import Foundation
import Testing

/// A node whose applied state conflicts with the leader's log stops serving and says why.
///
/// The bad history is made by hand: node n3 of cluster X (which applied X's writes) is
/// transplanted into cluster Y, whose log holds other entries in higher terms at the
/// same indexes. This is what a quorum that lost acknowledged data looks like to the
/// node that kept it.
@Suite(.serialized) struct DivergenceTests {
    @Test func test_nodeWithConflictingAppliedState_stopsServingAndSaysWhy() async throws {
        let dir = temporaryDirectory("diverge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let x = try LocalCluster(count: 3, directory: dir + "/x")
        try await x.start()
        _ = try await x.waitForLeader(timeout: .seconds(60))
        for k in 0..<20 {
            let leader = try #require(x.members[try await x.waitForLeader(timeout: .seconds(60))].runtime)
            #expect(try await write(leader, "x\(k)", "from-x").isSuccess)
        }
        // n3 of X applied all of it.
        let n3x = try #require(x.members[2].runtime)
        for _ in 0..<200 where n3x.status.appliedIndex < n3x.status.commitIndex || n3x.status.keys < 20 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(n3x.status.keys == 20)
        await x.shutdown()

        let y = try LocalCluster(count: 3, directory: dir + "/y")
        try await y.start()
        _ = try await y.waitForLeader(timeout: .seconds(60))
        // Raise Y's term well above X's, then write other data at the same indexes.
        for _ in 0..<3 {
            let l = try await y.waitForLeader(timeout: .seconds(60))
            try? await y.members[l].runtime?.transferLeadership()
        }
        for k in 0..<40 {
            let leader = try #require(y.members[try await y.waitForLeader(timeout: .seconds(60))].runtime)
            #expect(try await write(leader, "y\(k)", "from-y").isSuccess)
        }
        // Replace Y's n3 with X's n3.
        await y.stop(2)
        try FileManager.default.removeItem(atPath: y.members[2].directory)
        try FileManager.default.copyItem(atPath: x.members[2].directory, toPath: y.members[2].directory)
        try await y.restart(2)

        let n3 = try #require(y.members[2].runtime)
        var failure: String?
        // Found at the leader's next append (well under a second alone); the bound is
        // wide because the full parallel test run can starve this task for many seconds.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            failure = n3.status.failure
            if failure != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let reason = try #require(failure, "the transplanted node kept serving a diverged state")
        #expect(reason.contains("diverged"))
        // Reads and writes on it fail with the reason; nothing of X leaks into Y.
        await #expect(throws: ReplicationError.self) { _ = try await n3.read(["x0"]) }
        do {
            _ = try await n3.execute(.set(Key("z"), value("z")))
            Issue.record("a write through the diverged node succeeded")
        } catch let error as ReplicationError {
            #expect("\(error)".contains("diverged"), "unexpected error: \(error)")
        }
        // The rest of Y keeps serving (the stopped node is taken out of the wait).
        await y.stop(2)
        let leader = try #require(y.members[try await y.waitForLeader(timeout: .seconds(60))].runtime)
        #expect(try await write(leader, "after", "ok").isSuccess)
        let values = try await leader.read(["x0", "y0"])
        #expect(values[0] == nil)
        #expect(values[1]?.value == value("from-y"))
        await y.shutdown()
    }
}
