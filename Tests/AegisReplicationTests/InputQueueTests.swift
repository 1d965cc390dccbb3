@testable import AegisReplication
import AegisTransport
import Testing

/// The node's inbox is bounded: client requests beyond the limit are refused (the
/// caller answers `overloaded`), peer message batches beyond theirs are dropped, and
/// ticks and stop are always taken.
@Suite struct InputQueueTests {
    @Test func test_inputQueue_refusesClientRequestsBeyondTheLimit() {
        let queue = InputQueue(clientLimit: 3, messageBatchLimit: 2)
        let execute = RuntimeInput.execute([1]) { _ in }
        #expect(queue.offer(execute) == .queued)
        #expect(queue.offer(.executeBatch([[1], [2]]) { _, _ in }) == .queued)
        #expect(queue.offer(execute) == .full)
        #expect(queue.offer(.tick) == .queued)
        #expect(queue.offer(.messages([])) == .queued)
        #expect(queue.offer(.messages([])) == .queued)
        #expect(queue.offer(.messages([])) == .full)
        #expect(queue.droppedMessageBatches == 1)
        #expect(queue.takeAll().inputs.count == 5)
        // Drained: accepted again; a batch larger than the limit fits an empty queue.
        #expect(queue.offer(.executeBatch([[1], [2], [3], [4]]) { _, _ in }) == .queued)
        #expect(queue.offer(execute) == .full)
        _ = queue.close()
        #expect(queue.offer(.tick) == .closed)
    }

    /// The wait reported is the oldest queued input's: from the first push into an
    /// empty queue, not the last.
    @Test func test_inputQueue_reportsHowLongTheOldestInputWaited() throws {
        let queue = InputQueue()
        #expect(queue.push(.tick))
        let pushedFirst = LoopTimings.now()
        while LoopTimings.since(pushedFirst) < 20_000_000 {}  // 20 ms
        #expect(queue.push(.tick))
        let (inputs, waited) = queue.takeAll()
        #expect(inputs.count == 2)
        #expect(waited >= 20_000_000, "waited \(waited) ns")
        #expect(queue.push(.tick))
        #expect(queue.takeAll().waitedNanos < 20_000_000)
    }
}
