import AegisCRDT
import AegisKV
import AegisRaft
import AegisReplication
import Foundation
import Testing

/// The change stream through real runtimes: the link cursor is in the target's log and
/// snapshots, so a restart of every node resumes from it and a re-sent batch applies
/// nothing twice; the source reads its committed entries for the shipper.
@Suite(.serialized) struct StreamCursorRuntimeTests {
    func run(_ runtime: NodeRuntime, _ command: Command, attempts: Int = 50) async throws -> CommandResult {
        var lastError: (any Error)?
        for _ in 0 ..< attempts {
            do { return try await runtime.execute(command) } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw lastError ?? ReplicationError.timeout
    }

    func change(_ index: UInt64, _ command: Command) -> StreamChange {
        StreamChange(sourceIndex: index, origin: "east", timestamp: HLCTimestamp(physical: 1000 + index, replica: "east"),
                     command: command)
    }

    @Test func test_cursor_survivesARestartOfEveryNode_andAResentBatchAppliesNothing() async throws {
        let dir = temporaryDirectory("stream-cursor")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        let leader = try await cluster.waitForLeader()
        let runtime = try #require(cluster.members[leader].runtime)
        #expect(try await run(runtime, .setDRState(DRTransition(epoch: 2, role: .standby, primary: "p:1"))).error == nil)
        let batch = StreamBatch(source: "east", epoch: 2, afterIndex: 0, lastIndex: 10, sourceCommit: 12,
                                changes: [change(3, .increment("n", by: 5)), change(7, .set("k", value("v")))])
        let first = try await run(runtime, .streamBatch(batch))
        #expect(first.error == nil && first.integer == 10 && first.keyCount == 2)
        for k in 0 ..< 3 {
            await cluster.stop(k)
            try await cluster.restart(k)
        }
        let after = try #require(cluster.members[try await cluster.waitForLeader()].runtime)
        // The batch again (the shipper did not see the answer): nothing applied twice.
        let again = try await run(after, .streamBatch(batch))
        #expect(again.error == nil && again.integer == 10 && again.keyCount == 0)
        let values = try await after.read(["n", "k"])
        #expect(values.map { $0.map { String(decoding: $0.value, as: UTF8.self) } } == ["5", "v"])
        #expect(after.status.dr.cursors["east"]?.lastIndex == 10 && after.status.dr.role == .standby)
        // The next batch resumes from the cursor; one after a gap is refused.
        let gap = StreamBatch(source: "east", epoch: 2, afterIndex: 11, lastIndex: 12, sourceCommit: 12,
                              changes: [change(12, .set("g", value("x")))])
        #expect(try await run(after, .streamBatch(gap)).error == .streamGap(source: "east", cursor: 10, afterIndex: 11))
        // A client write is refused where it is applied, and by nothing else here.
        #expect(try await run(after, .set("w", value("1"))).error == .readOnly(role: .standby, epoch: 2, primary: "p:1"))
        await cluster.shutdown()
    }

    @Test func test_committedEntries_readsTheLogForTheShipper() async throws {
        let dir = temporaryDirectory("stream-log")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cluster = try LocalCluster(count: 3, directory: dir)
        try await cluster.start()
        let runtime = try #require(cluster.members[try await cluster.waitForLeader()].runtime)
        for k in 0 ..< 10 { _ = try await write(runtime, "k\(k)", "v\(k)") }
        let read = try await runtime.committedEntries(after: 0, maxCount: 4, maxBytes: 1 << 20)
        #expect(read.entries.map(\.index) == [1, 2, 3, 4] && read.commitIndex >= 10 && read.firstIndex <= 1)
        let tail = try await runtime.committedEntries(after: read.commitIndex, maxCount: 4, maxBytes: 1 << 20)
        #expect(tail.entries.isEmpty)
        let writes = try await runtime.committedEntries(after: 0, maxCount: 1000, maxBytes: 1 << 20).entries
            .compactMap { try? Command(decoding: $0.data) }.filter(\.isWrite)
        // `write` retries after an unknown outcome (a leader change under load), so a
        // write may be in the log twice: every one is there, nothing else is.
        #expect(Set(writes.flatMap(\.keys)) == Set((0 ..< 10).map { Key("k\($0)") }) && writes.count >= 10)
        await cluster.shutdown()
    }
}
