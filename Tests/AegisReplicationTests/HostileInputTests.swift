import AegisKV
import AegisRaft
import AegisReplication
import AegisTransport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// Crafted peer messages sent to a live node over the real TCP transport, with a valid
/// handshake under a member's name (what a buggy or hostile peer can do). After each,
/// the node must still serve, and the cluster's data must be unchanged: every node
/// converges on the same digest, and a write made afterwards is applied everywhere.
@Suite(.serialized) struct HostileInputTests {
    /// A linearizable read can time out on a loaded machine; the data checks retry it.
    func retrying<T>(_ body: () async throws -> T) async throws -> T {
        for _ in 0..<10 {
            do { return try await body() } catch ReplicationError.timeout, ReplicationError.noLeader {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return try await body()
    }

    /// Sends `messages` to `target` on a fresh connection that claims to be `from`.
    func inject(_ messages: [RaftMessage], to target: LocalCluster.Member) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: target.host, port: target.port).get()
        var buffer = channel.allocator.buffer(capacity: 256)
        buffer.writeHandshakeFrame(Handshake(clusterID: "local", from: messages[0].from, to: target.id))
        for m in messages { buffer.writeMessageFrame(Message(m)) }
        // The node may close the connection on a message it refuses: that is fine.
        try? await channel.writeAndFlush(buffer)
        try await Task.sleep(for: .milliseconds(300))
        try? await channel.close()
    }

    /// The node serves, a new write through it commits, and all nodes converge on one
    /// digest that contains exactly the keys written legitimately.
    func expectIntact(_ cluster: LocalCluster, written: inout [String: String], tag: String) async throws {
        for member in cluster.members {
            let runtime = try #require(member.runtime)
            #expect(runtime.status.running, "\(member.id) stopped after \(tag)")
            #expect(runtime.status.failure == nil, "\(member.id) failed after \(tag): \(runtime.status.failure ?? "")")
        }
        let key = "after-\(tag)"
        let leader = try #require(cluster.members[try await cluster.waitForLeader(timeout: .seconds(60))].runtime)
        let result = try await write(leader, key, tag)
        #expect(result.isSuccess)
        written[key] = tag
        var digests: Set<String> = []
        for _ in 0..<100 {
            digests = []
            var indexes: Set<LogIndex> = []
            for member in cluster.members {
                let d = try await #require(member.runtime).digest()
                digests.insert(d.digest)
                indexes.insert(d.appliedIndex)
            }
            if digests.count == 1 && indexes.count == 1 { break }
            try await Task.sleep(for: .milliseconds(30))
        }
        #expect(digests.count == 1, "replicas diverged after \(tag)")
        for member in cluster.members {
            let runtime = try #require(member.runtime)
            let keys = written.keys.sorted()
            let values = try await retrying { try await runtime.read(keys.map { Key($0) }) }
            #expect(values.map { $0.map { String(decoding: $0.value, as: UTF8.self) } } == keys.map { written[$0] },
                    "\(member.id) has other data after \(tag)")
            #expect(try await retrying { try await runtime.count() } == written.count,
                    "\(member.id) has extra keys after \(tag)")
        }
    }

    @Test func test_crafted_messages_leaveLiveNodeServingAndDataUnchanged() async throws {
        let dir = temporaryDirectory("hostile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        let l = try await cluster.waitForLeader(timeout: .seconds(60))
        var written: [String: String] = [:]
        for k in 0..<10 {
            let leader = try #require(cluster.members[try await cluster.waitForLeader(timeout: .seconds(60))].runtime)
            #expect(try await write(leader, "k\(k)", "v\(k)").isSuccess)
            written["k\(k)"] = "v\(k)"
        }
        let leader = cluster.members[l]
        let follower = cluster.members[(l + 1) % 3]
        let other = cluster.members[(l + 2) % 3]
        func term() throws -> Term { try #require(leader.runtime).status.term }
        func last() throws -> LogIndex { try #require(leader.runtime).status.lastIndex }

        // To the leader, claiming to be a follower: a match index of 2^64-1.
        try await inject([RaftMessage(from: follower.id, to: leader.id, payload: .appendEntriesResponse(
            AppendEntriesResponse(term: try term(), success: true, followerID: follower.id, matchIndex: .max)))], to: leader)
        try await expectIntact(cluster, written: &written, tag: "huge-match")

        // To the leader: a rejection with a hint of 2^64-1.
        try await inject([RaftMessage(from: follower.id, to: leader.id, payload: .appendEntriesResponse(
            AppendEntriesResponse(term: try term(), success: false, followerID: follower.id,
                                  rejectedIndex: try last(), hintIndex: .max, hintTerm: .max)))], to: leader)
        try await expectIntact(cluster, written: &written, tag: "huge-hint")

        // To a follower, claiming to be the leader: entries that skip an index and do
        // not follow prevLogIndex.
        let forged = Command.set(Key("forged"), Array("x".utf8)).encoded()
        let base = try last()
        try await inject([RaftMessage(from: leader.id, to: follower.id, payload: .appendEntries(AppendEntriesRequest(
            term: try term(), leaderID: leader.id, prevLogIndex: base, prevLogTerm: try term(),
            entries: [LogEntry(index: base + 1, term: try term(), data: forged),
                      LogEntry(index: base + 3, term: try term(), data: forged)],
            leaderCommit: base)))], to: follower)
        try await inject([RaftMessage(from: leader.id, to: follower.id, payload: .appendEntries(AppendEntriesRequest(
            term: try term(), leaderID: leader.id, prevLogIndex: base, prevLogTerm: try term(),
            entries: [LogEntry(index: base + 5, term: try term(), data: forged)], leaderCommit: base)))], to: follower)
        try await expectIntact(cluster, written: &written, tag: "non-contiguous")

        // To a follower: a heartbeat whose commit index lies beyond its log.
        try await inject([RaftMessage(from: leader.id, to: follower.id, payload: .heartbeat(
            HeartbeatRequest(term: try term(), leaderID: leader.id, commitIndex: .max)))], to: follower)
        try await expectIntact(cluster, written: &written, tag: "commit-beyond-log")

        // To a follower: snapshot chunks at absurd offsets.
        let meta = SnapshotMetadata(index: .max - 1, term: try term(), confState: ConfState(voters: [leader.id]))
        try await inject([
            RaftMessage(from: leader.id, to: follower.id, payload: .installSnapshot(InstallSnapshotRequest(
                term: try term(), leaderID: leader.id, metadata: meta, offset: .max, data: [1, 2, 3], done: true))),
            RaftMessage(from: leader.id, to: follower.id, payload: .installSnapshot(InstallSnapshotRequest(
                term: try term(), leaderID: leader.id, metadata: meta, offset: 1 << 40, data: [1], done: false))),
        ], to: follower)
        try await expectIntact(cluster, written: &written, tag: "snapshot-offsets")

        // To a follower: a vote request and a heartbeat in term 2^64-1.
        let termBefore = try term()
        try await inject([
            RaftMessage(from: other.id, to: follower.id, payload: .vote(VoteRequest(
                term: .max, candidateID: other.id, lastLogIndex: .max, lastLogTerm: .max))),
            RaftMessage(from: leader.id, to: follower.id, payload: .heartbeat(
                HeartbeatRequest(term: .max, leaderID: leader.id, commitIndex: 0))),
        ], to: follower)
        try await expectIntact(cluster, written: &written, tag: "max-term")
        #expect(try #require(follower.runtime).status.term < Term.max / 2, "the follower adopted an absurd term")
        _ = termBefore
        await cluster.shutdown()
    }

    // A flood of bytes before any handshake: the first frame is held to the handshake
    // limit, so an unidentified connection is closed at once and buffers nothing.
    @Test func test_peerPort_oversizedFrameBeforeHandshake_isRefused() async throws {
        let dir = temporaryDirectory("hostile-pre")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        _ = try await cluster.waitForLeader(timeout: .seconds(60))
        let target = cluster.members[0]
        var channels: [any Channel] = []
        for _ in 0..<8 {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: target.host, port: target.port).get()
            var buffer = channel.allocator.buffer(capacity: 1 << 20)
            buffer.writeInteger(UInt32(64 << 20 - 1))  // a frame of almost 64 MiB
            buffer.writeRepeatingByte(0x41, count: 1 << 20)
            channel.writeAndFlush(buffer, promise: nil)
            channels.append(channel)
        }
        // Bounded wait: each connection must be closed by the node within 5 s.
        var closed = 0
        for _ in 0..<100 where closed < channels.count {
            closed = channels.filter { !$0.isActive }.count
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(closed == 8)
        for channel in channels where channel.isActive { try? await channel.close() }
        let leader = try #require(cluster.members[try await cluster.waitForLeader(timeout: .seconds(60))].runtime)
        #expect(try await write(leader, "still", "serving").isSuccess)
        await cluster.shutdown()
    }
}
