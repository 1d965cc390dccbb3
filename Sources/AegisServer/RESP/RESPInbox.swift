import NIOConcurrencyHelpers
import NIOCore

/// The batches of one connection on their way from its pipeline to the task that
/// serves it: the last inbound handler pushes, the task awaits `next()`.
///
/// Why not `NIOAsyncChannel`: its inbound stream is a general back-pressured async
/// sequence, and on the server's hot path (one batch per read, one task resumption per
/// batch) its generic state machine cost about a sixth of the leader's event-loop CPU
/// per `SET` (profiled under `redis-benchmark -c 50`). Here a batch is handed over with
/// one lock and, when the task waits, one continuation resume on the connection's own
/// event loop (the task's executor). Back-pressure stays where it was:
/// `RESPBatchHandler` stops reading the socket while the connection has more than
/// `RESPLimits.maxPendingCommands` commands or `maxPendingBytes` bytes unanswered, so
/// the inbox holds at most that much.
final class RESPInbox: Sendable {
    private struct State {
        var batches: [RESPBatch] = []
        var first = 0
        var waiter: CheckedContinuation<RESPBatch?, Never>?
        var finished = false
    }

    private let state = NIOLockedValueBox(State())

    /// Hands a batch to the task (dropped once the inbox finished).
    func push(_ batch: RESPBatch) {
        let waiter: CheckedContinuation<RESPBatch?, Never>? = state.withLockedValue { state in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.batches.append(batch)
            return nil
        }
        waiter?.resume(returning: batch)
    }

    /// No more batches: `next()` returns the ones queued, then `nil`.
    func finish() {
        let waiter: CheckedContinuation<RESPBatch?, Never>? = state.withLockedValue { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next batch, waiting for one; `nil` once the connection's input ended and
    /// every batch was taken. One caller at a time (the connection's task).
    func next() async -> RESPBatch? {
        if case .ready(let batch) = state.withLockedValue({ Self.take(&$0) }) { return batch }
        return await withCheckedContinuation { continuation in
            let outcome: Take = state.withLockedValue { state in
                let outcome = Self.take(&state)
                if case .wait = outcome { state.waiter = continuation }
                return outcome
            }
            if case .ready(let batch) = outcome { continuation.resume(returning: batch) }
        }
    }

    private enum Take {
        /// A batch, or `nil` when the inbox finished and is empty.
        case ready(RESPBatch?)
        case wait
    }

    private static func take(_ state: inout State) -> Take {
        if let batch = dequeue(&state) { return .ready(batch) }
        return state.finished ? .ready(nil) : .wait
    }

    private static func dequeue(_ state: inout State) -> RESPBatch? {
        guard state.first < state.batches.count else { return nil }
        let batch = state.batches[state.first]
        state.first += 1
        if state.first == state.batches.count {
            state.batches.removeAll(keepingCapacity: true)
            state.first = 0
        }
        return batch
    }
}

/// The last inbound handler of a RESP connection: passes its batches to the
/// connection's `RESPInbox`, and finishes the inbox when the input ends (the client
/// closed, the server closed the input for a graceful shutdown, or an error).
final class RESPInboxHandler: ChannelInboundHandler {
    typealias InboundIn = RESPBatch

    let inbox: RESPInbox

    init(inbox: RESPInbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.push(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { inbox.finish() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Protocol errors arrive as batches (`RESPBatchHandler`); anything else (a TLS
        // failure, a reset) ends the connection.
        inbox.finish()
        context.close(promise: nil)
    }
}
