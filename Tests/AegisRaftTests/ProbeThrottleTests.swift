import AegisRaft
import AegisTestKit
import Testing

/// A probe waiting for its answer is re-sent at heartbeat answers only while the copies
/// sent in one *periodic* heartbeat interval stay within 64 KiB (a large one: once an
/// interval). Read rounds are heartbeats too (one per batch of reads),
/// and every answer to one used to resume the probe: a follower rejoining after a restart received copy after copy of its
/// catch-up (each up to `maxSizePerMessage`) while it was still writing the first,
/// and the leader's event loop spent 100 ms encoding them (a rolling restart's
/// slowest requests, issue 18).
@Suite struct ProbeThrottleTests {
    /// A leader n1 whose progress of n2 is in probe with the probe in flight (n2 missed
    /// entries while cut off, then rejected an append).
    private func probing(entryBytes: Int = 20 << 10) throws -> (InteractionEnv, Term) {
        var config = plainConfig()
        config.heartbeatInterval = 5
        config.maxSizePerMessage = 256 << 10
        let env = try InteractionEnv(count: 3, config: config)
        try env.elect("n1")
        try env.propose("n1", "a")
        try env.stabilize()
        env.cut = [["n1", "n2"], ["n2", "n1"]]
        let large = String(repeating: "x", count: entryBytes)  // five entries: by default a probe of 100 KiB, above 64 KiB
        for k in 0..<5 { try env.propose("n1", "\(k)" + large) }
        try env.stabilize()
        env.heal()
        let leader = try #require(env["n1"])
        let match = try #require(leader.progress(of: "n2")?.match)
        let last = try leader.log.lastIndex()
        #expect(match < last)
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(AppendEntriesResponse(
                term: leader.term, success: false, followerID: "n2", rejectedIndex: last - 1, hintIndex: match))))
        }
        #expect(env["n1"]?.progress(of: "n2")?.state == .probe)
        #expect(appends(env.drop(where: to("n2"))) == 1, "the probe")
        return (env, leader.term)
    }

    private func appends(_ lines: [String]) -> Int { lines.filter { $0.contains(" App term=") }.count }

    private func answerHeartbeat(_ env: InteractionEnv, term: Term, context: UInt64) throws {
        let match = env["n1"]?.progress(of: "n2")?.match ?? 0
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .heartbeatResponse(HeartbeatResponse(
                term: term, followerID: "n2", context: context, lastIndex: match, heartbeatCommit: match))))
        }
    }

    /// A small probe (at most 64 KiB) is still
    /// re-sent at any heartbeat answer: cheap, and quick on a lossy link.
    @Test func test_probe_smallProbeIsResentAtAnyAnswer() throws {
        var config = plainConfig()
        config.heartbeatInterval = 5
        let env = try InteractionEnv(count: 3, config: config)
        try env.elect("n1")
        env.cut = [["n1", "n2"], ["n2", "n1"]]
        try env.propose("n1", "x")
        try env.stabilize()
        env.heal()
        let leader = try #require(env["n1"])
        let match = try #require(leader.progress(of: "n2")?.match)
        let last = try leader.log.lastIndex()
        try env.with("n1") {
            try $0.step(RaftMessage(from: "n2", to: "n1", payload: .appendEntriesResponse(AppendEntriesResponse(
                term: leader.term, success: false, followerID: "n2", rejectedIndex: last, hintIndex: match))))
        }
        #expect(appends(env.drop(where: to("n2"))) == 1, "the probe")
        for context in 1...3 { try answerHeartbeat(env, term: leader.term, context: UInt64(context)) }
        #expect(appends(env.drop(where: to("n2"))) == 3)
    }

    @Test func test_probe_readRoundAnswersDoNotResendIt() throws {
        let (env, term) = try probing()
        for context in 1...20 { try answerHeartbeat(env, term: term, context: UInt64(context)) }
        #expect(appends(env.drop(where: to("n2"))) == 0, "twenty read-round answers in one heartbeat interval resend nothing")
        // The periodic heartbeat goes out; its answer resumes the probe, once.
        try env.tick("n1", 5)
        _ = env.drop(where: to("n2"))
        try answerHeartbeat(env, term: term, context: 0)
        try answerHeartbeat(env, term: term, context: 99)
        #expect(appends(env.drop(where: to("n2"))) == 1, "one probe per periodic heartbeat")
        // That probe was lost too; at the next periodic heartbeat n2 is probed again,
        // answers, and catches up.
        try env.tick("n1", 5)
        try env.stabilize()
        #expect(try env["n2"]?.log.lastIndex() == (try env["n1"]?.log.lastIndex()))
    }

    /// A probe under 64 KiB is re-sent at answers until the copies of this heartbeat
    /// interval reach 64 KiB, not at every answer: a follower that answers 200 read
    /// rounds at once (it was replaying its log) gets a few copies, not 200 (a rolling
    /// restart measured 2.27 MB sent to the rejoining follower in one second).
    @Test func test_probe_smallProbeCopiesPerIntervalAreBounded() throws {
        let (env, term) = try probing(entryBytes: 2 << 10)  // five entries: a probe of ~10 KiB
        for context in 1...200 { try answerHeartbeat(env, term: term, context: UInt64(context)) }
        let copies = appends(env.drop(where: to("n2")))
        #expect(copies >= 1, "a small probe is still re-sent at an answer")
        #expect(copies <= 5, "\(copies) copies of a 10 KiB probe in one interval: at most 64 KiB in all")
        // The next periodic heartbeat opens a new interval: an answer re-sends at once.
        try env.tick("n1", 5)
        _ = env.drop(where: to("n2"))
        try answerHeartbeat(env, term: term, context: 0)
        #expect(appends(env.drop(where: to("n2"))) == 1)
        // That copy was lost too; the next periodic heartbeat probes again and n2 catches up.
        try env.tick("n1", 5)
        try env.stabilize()
        #expect(try env["n2"]?.log.lastIndex() == (try env["n1"]?.log.lastIndex()))
    }
}
