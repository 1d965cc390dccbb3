public import AegisRESP
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One committed change of a watched key (see ``AegisClient/watch(prefix:from:)``).
public struct AegisWatchEvent: Sendable, Hashable {
    /// The log index of the entry that made the change; the events of one entry (an
    /// `MSET`, a `MULTI`) share it.
    public var index: UInt64
    /// The change, by its keyspace-notification name: `set`, `del`, `incrby`,
    /// `append`, `expire`, `persist`, `expired`, `rename_from`, `rename_to`,
    /// `copy_to`, `sadd`, `srem`, `hset`, `hdel`, `hincrby`, or `flushall` (every
    /// key of the prefix is gone; `key` is the prefix).
    public var event: String
    /// The key.
    public var key: [UInt8]
    /// What the write carried: the value of a `set`, the suffix of an `append`, the
    /// decimal delta of an `incrby`; `nil` for the others.
    public var argument: [UInt8]?

    /// Creates an event.
    public init(index: UInt64, event: String, key: [UInt8], argument: [UInt8]?) {
        (self.index, self.event, self.key, self.argument) = (index, event, key, argument)
    }
}

/// Every committed change of the keys under a prefix, in log order, exactly once:
/// an `AsyncSequence` over `AEGIS.WATCH` that survives node failures and leader
/// changes.
///
/// The watch runs on a connection of its own to one of the configured nodes (any
/// node: committed entries are the same everywhere). When the connection breaks it
/// reconnects — to the next node, with the client's backoff — and resumes `FROM` the
/// position after the last event it delivered (skipping the events of a
/// half-delivered entry), so a consumer sees each change once, in order. It ends
/// with ``AegisClientError/compacted(_:)`` when the node no longer has the entries
/// it needs (the log was compacted past the position: read the keys again and start
/// a new watch), with ``AegisClientError/server(_:)`` when the server refuses the
/// watch for good (`NOPERM`, a syntax error), and when the consumer stops iterating
/// or the client shuts down.
///
/// Memory is bounded: at most `AegisClientConfiguration.watchBufferEvents` events
/// wait for the consumer; beyond that the watch stops reading its connection, and
/// the server stops reading its log for it.
public struct AegisWatch: AsyncSequence, Sendable {
    public typealias Element = AegisWatchEvent

    let client: AegisClient
    let prefix: [UInt8]
    let from: UInt64?

    /// Starts the watch (a connection of its own) and returns its iterator.
    public func makeAsyncIterator() -> Iterator {
        let queue = WatchQueue(capacity: Swift.max(1, client.configuration.watchBufferEvents))
        let task = Task { [client, prefix, from] in await client.runWatch(prefix: prefix, from: from, into: queue) }
        return Iterator(queue: queue, lifetime: WatchLifetime(task: task, queue: queue))
    }

    /// The iterator of a watch; the watch stops when it is released.
    public struct Iterator: AsyncIteratorProtocol {
        let queue: WatchQueue
        let lifetime: WatchLifetime

        /// The next change, `nil` once the watch ended (the client shut down).
        public mutating func next() async throws -> AegisWatchEvent? {
            try await withTaskCancellationHandler {
                try await queue.next()
            } onCancel: { [queue] in
                queue.cancel()
            }
        }
    }
}

/// Stops a watch's task when its iterator is released.
final class WatchLifetime: Sendable {
    let task: Task<Void, Never>
    let queue: WatchQueue

    init(task: Task<Void, Never>, queue: WatchQueue) {
        (self.task, self.queue) = (task, queue)
    }

    deinit {
        queue.cancel()
        task.cancel()
    }
}

/// The bounded hand-over between a watch's connection task and its consumer.
final class WatchQueue: Sendable {
    private struct State {
        var items: [AegisWatchEvent] = []
        var head = 0
        var end: (any Error)?
        var ended = false
        var consumer: CheckedContinuation<AegisWatchEvent?, any Error>?
        var producer: CheckedContinuation<Void, any Error>?
        var cancelled = false

        var count: Int { items.count - head }

        mutating func take() -> AegisWatchEvent? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count { (items, head) = ([], 0) } else if head >= 256 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) { self.capacity = capacity }

    /// Hands `event` to the consumer; waits while `capacity` events wait. Throws
    /// `CancellationError` once the consumer is gone.
    func push(_ event: AegisWatchEvent) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let action = state.withLockedValue { state -> (CheckedContinuation<AegisWatchEvent?, any Error>?, Bool, Bool) in
                if state.cancelled { return (nil, false, true) }
                if let consumer = state.consumer {
                    state.consumer = nil
                    return (consumer, true, false)
                }
                state.items.append(event)
                if state.count < capacity { return (nil, true, false) }
                state.producer = continuation  // resumed when the consumer takes one
                return (nil, false, false)
            }
            switch action {
            case (let consumer?, _, _):
                consumer.resume(returning: event)
                continuation.resume()
            case (nil, true, _): continuation.resume()
            case (nil, false, true): continuation.resume(throwing: CancellationError())
            default: break
            }
        }
    }

    /// Ends the sequence after the events already queued: normally, or with `error`.
    func finish(throwing error: (any Error)? = nil) {
        let consumer = state.withLockedValue { state -> CheckedContinuation<AegisWatchEvent?, any Error>? in
            guard !state.ended else { return nil }
            (state.ended, state.end) = (true, error)
            defer { state.consumer = nil }
            return state.count == 0 ? state.consumer : nil
        }
        if let error { consumer?.resume(throwing: error) } else { consumer?.resume(returning: nil) }
    }

    /// The next event; waits for one.
    func next() async throws -> AegisWatchEvent? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AegisWatchEvent?, any Error>) in
            let (result, producer) = state.withLockedValue { state -> (Result<AegisWatchEvent?, any Error>?, CheckedContinuation<Void, any Error>?) in
                if let item = state.take() {
                    defer { state.producer = nil }
                    return (.success(item), state.producer)
                }
                if state.cancelled { return (.failure(CancellationError()), nil) }
                if state.ended { return (state.end.map { .failure($0) } ?? .success(nil), nil) }
                state.consumer = continuation
                return (nil, nil)
            }
            producer?.resume()
            if let result { continuation.resume(with: result) }
        }
    }

    /// The consumer is gone: wakes both sides.
    func cancel() {
        let (consumer, producer) = state.withLockedValue { state in
            state.cancelled = true
            defer { (state.consumer, state.producer) = (nil, nil) }
            return (state.consumer, state.producer)
        }
        consumer?.resume(throwing: CancellationError())
        producer?.resume(throwing: CancellationError())
    }
}

extension AegisClient {
    /// Every committed change of the keys that start with `prefix`, in log order,
    /// exactly once, from log index `from` on (`nil`: from now). See ``AegisWatch``.
    ///
    /// ```swift
    /// for try await change in client.watch(prefix: "config/") {
    ///     print(change.index, change.event, String(decoding: change.key, as: UTF8.self))
    /// }
    /// ```
    public func watch(prefix: String, from index: UInt64? = nil) -> AegisWatch {
        AegisWatch(client: self, prefix: Array(prefix.utf8), from: index)
    }

    /// Where a watch resumes: `FROM index`, skipping the first `skip` events of that
    /// index (delivered before the connection broke).
    struct WatchPosition {
        var index: UInt64?
        var skip = 0
    }

    /// The watch's connection loop: one node at a time, resuming where it stopped.
    func runWatch(prefix: [UInt8], from: UInt64?, into queue: WatchQueue) async {
        var position = WatchPosition(index: from)
        var delay = configuration.retryDelay
        var attempt = 0
        while !Task.isCancelled {
            if state.withLockedValue({ $0.isShutDown }) { return queue.finish() }
            let endpoints = configuration.endpoints
            let endpoint = endpoints[attempt % endpoints.count]
            attempt += 1
            do {
                // Returns when the server closed the connection (it stopped, or dropped a slow reader).
                try await watchOnce(endpoint, prefix: prefix, position: &position, queue: queue)
                delay = configuration.retryDelay
            } catch let error as AegisClientError {
                return queue.finish(throwing: error)
            } catch is CancellationError {
                return
            } catch {
                // The connection failed or broke: the next node, after a pause.
            }
            if Task.isCancelled { return }
            state.withLockedValue { $0.statistics.watchReconnects += 1 }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.maxRetryDelay)
        }
    }

    /// One connection's watch: returns or throws when it ends; `AegisClientError` ends
    /// the whole watch, other errors make it reconnect.
    private func watchOnce(_ endpoint: AegisEndpoint, prefix: [UInt8], position: inout WatchPosition,
                           queue: WatchQueue) async throws {
        let channel = try await RESPClientConnection.connectStream(to: endpoint, configuration: configuration,
                                                                   sslContext: sslContext, group: group)
        try await channel.executeThenClose { inbound, outbound in
            var replies = inbound.makeAsyncIterator()
            if let password = configuration.password {
                try await outbound.write(RESPClientConnection.encode(["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password]))
                if case .error(let text)? = try await replies.next() { throw AegisClientError.server(text) }
            }
            var command = [Array("AEGIS.WATCH".utf8), prefix]
            if let index = position.index { command += [Array("FROM".utf8), Array(String(index).utf8)] }
            try await outbound.write(RESPClientConnection.encode(command))
            var skip = position.skip
            while let value = try await replies.next() {
                if case .error(let text) = value {
                    if text.hasPrefix("COMPACTED") { throw AegisClientError.compacted(text) }
                    if text.hasPrefix("NOPERM") || text.hasPrefix("ERR syntax") || text.hasPrefix("WRONGPASS") {
                        throw AegisClientError.server(text)
                    }
                    throw ConnectionFailure(maybeSent: false, reason: text)  // another node may take it
                }
                guard let parts = value.watchElements, let kind = parts.first?.text else {
                    throw AegisClientError.unexpectedReply("AEGIS.WATCH sent \(value)")
                }
                let number = parts.count > 1 ? parts[1].watchIndex : nil
                switch kind {
                case "watch" where parts.count == 3:
                    if position.index == nil { position.index = parts[2].watchIndex }
                case "change" where parts.count == 5:
                    guard let index = number, let key = parts[3].bytes else {
                        throw AegisClientError.unexpectedReply("AEGIS.WATCH sent \(value)")
                    }
                    if index == position.index, skip > 0 {
                        skip -= 1  // delivered before the reconnect
                        continue
                    }
                    try await queue.push(AegisWatchEvent(index: index, event: parts[2].text ?? "", key: key, argument: parts[4].bytes))
                    if index == position.index { position.skip += 1 } else { position = WatchPosition(index: index, skip: 1) }
                case "progress" where number != nil:
                    if let index = number, index >= (position.index ?? 0) { position = WatchPosition(index: index + 1, skip: 0) }
                case "compacted":
                    throw AegisClientError.compacted("the log was compacted past index \(number ?? 0) on \(endpoint)")
                default:
                    throw AegisClientError.unexpectedReply("AEGIS.WATCH sent \(value)")
                }
            }
        }
    }
}

extension RESPValue {
    /// The elements of a watch message (an array in RESP2, a push in RESP3).
    fileprivate var watchElements: [RESPValue]? {
        switch self {
        case .array(let elements), .push(let elements): return elements
        default: return nil
        }
    }

    /// A log index in a watch message.
    fileprivate var watchIndex: UInt64? {
        if case .integer(let number) = self { return UInt64(exactly: number) }
        return nil
    }
}
