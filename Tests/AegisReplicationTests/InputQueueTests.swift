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
        #expect(queue.takeAll().count == 5)
        // Drained: accepted again; a batch larger than the limit fits an empty queue.
        #expect(queue.offer(.executeBatch([[1], [2], [3], [4]]) { _, _ in }) == .queued)
        #expect(queue.offer(execute) == .full)
        _ = queue.close()
        #expect(queue.offer(.tick) == .closed)
    }
}
