@testable import AegisServer
import NIOCore
import NIOEmbedded
import Testing

private func batch(_ name: String) -> RESPBatch {
    RESPBatch(requests: [RESPRequest(arguments: [ByteBuffer(string: name)])], protocolError: nil)
}

private func name(_ batch: RESPBatch?) -> String? {
    batch?.requests.first.map { String(buffer: $0.arguments[0]) }
}

/// The hand-over of a connection's batches from its pipeline to its task.
@Suite struct RESPInboxTests {
    @Test func test_batchesQueuedBeforeTheTaskWaits_comeOutInOrder_thenNilAfterFinish() async {
        let inbox = RESPInbox()
        inbox.push(batch("a"))
        inbox.push(batch("b"))
        inbox.finish()
        inbox.push(batch("late"))  // dropped: the input ended
        #expect(name(await inbox.next()) == "a")
        #expect(name(await inbox.next()) == "b")
        #expect(await inbox.next() == nil)
        #expect(await inbox.next() == nil)
    }

    @Test func test_aWaitingTask_isResumedByAPush_andByFinish() async {
        let inbox = RESPInbox()
        async let first = inbox.next()
        try? await Task.sleep(for: .milliseconds(20))
        inbox.push(batch("x"))
        #expect(name(await first) == "x")
        async let second = inbox.next()
        try? await Task.sleep(for: .milliseconds(20))
        inbox.finish()
        #expect(await second == nil)
    }

    @Test func test_handler_endsTheInboxWhenTheInputClosesOrTheChannelGoesInactive() async throws {
        let inbox = RESPInbox()
        let channel = EmbeddedChannel(handler: RESPInboxHandler(inbox: inbox))
        try channel.writeInbound(batch("one"))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try channel.writeInbound(batch("after-close"))
        #expect(name(await inbox.next()) == "one")
        #expect(await inbox.next() == nil)

        let other = RESPInbox()
        let second = EmbeddedChannel(handler: RESPInboxHandler(inbox: other))
        try second.writeInbound(batch("two"))
        _ = try? second.finish()  // channelInactive
        #expect(name(await other.next()) == "two")
        #expect(await other.next() == nil)
    }

    @Test func test_manyBatchesAcrossSuspensions_arriveOnceEachInOrder() async {
        let inbox = RESPInbox()
        let producer = Task {
            for index in 0..<2_000 {
                inbox.push(batch("\(index)"))
                if index % 97 == 0 { await Task.yield() }
            }
            inbox.finish()
        }
        var seen: [String] = []
        while let next = await inbox.next() { seen.append(name(next) ?? "?") }
        await producer.value
        #expect(seen == (0..<2_000).map { "\($0)" })
    }
}
