public import AegisRaft
internal import NIOConcurrencyHelpers

/// A hub that connects in-process transports, for tests.
///
/// Every node gets an `InMemoryTransport` from `makeTransport(for:)`. The hub can cut
/// links (one direction at a time), drop messages (by predicate or with a probability
/// drawn from a seeded generator, so a test replays exactly) and delay them. Delayed
/// messages are held until `deliverDueMessages(now:)` or `releaseDelayedMessages()`
/// is called, or until `run(pollInterval:)`, run by the test in its own task,
/// delivers them.
public final class InMemoryNetwork: Sendable {
    /// A directed link between two nodes.
    public struct Link: Sendable, Hashable {
        /// The sending side.
        public var from: NodeID
        /// The receiving side.
        public var to: NodeID
        /// Creates a link.
        public init(from: NodeID, to: NodeID) {
            self.from = from
            self.to = to
        }
    }

    struct Endpoint {
        var continuation: AsyncStream<[Message]>.Continuation
        var stats = TransportStats()
    }

    struct Delayed {
        var deadline: ContinuousClock.Instant
        var message: Message
    }

    struct State {
        var endpoints: [NodeID: Endpoint] = [:]
        var cutLinks: Set<Link> = []
        var dropProbability = 0.0
        var dropRule: (@Sendable (Message) -> Bool)?
        var delayRule: (@Sendable (Message) -> Duration?)?
        var delayed: [Delayed] = []
        var generator: SplitMix64
    }

    private let state: NIOLockedValueBox<State>

    /// Creates a hub; `seed` drives the random drops.
    public init(seed: UInt64 = 0) {
        state = NIOLockedValueBox(State(generator: SplitMix64(seed: seed)))
    }

    /// Creates the transport of node `id`, replacing (and finishing) any earlier one,
    /// as when a node restarts. `inboundLimit` bounds the batches waiting to be received.
    public func makeTransport(for id: NodeID, inboundLimit: Int = 4096) -> InMemoryTransport {
        let (stream, continuation) = AsyncStream.makeStream(of: [Message].self, bufferingPolicy: .bufferingOldest(max(1, inboundLimit)))
        let previous = state.withLockedValue { state in
            defer { state.endpoints[id] = Endpoint(continuation: continuation) }
            return state.endpoints[id]
        }
        previous?.continuation.finish()
        return InMemoryTransport(localID: id, network: self, inbound: stream)
    }

    /// Removes node `id`: its stream finishes and messages to it are dropped.
    public func remove(_ id: NodeID) {
        let removed = state.withLockedValue { $0.endpoints.removeValue(forKey: id) }
        removed?.continuation.finish()
    }

    /// The nodes attached to the hub.
    public var nodes: [NodeID] {
        state.withLockedValue { Array($0.endpoints.keys) }.sorted()
    }

    // MARK: Faults

    /// Cuts the link from `from` to `to` (one direction).
    public func cut(from: NodeID, to: NodeID) {
        _ = state.withLockedValue { $0.cutLinks.insert(Link(from: from, to: to)) }
    }

    /// Restores the link from `from` to `to`.
    public func heal(from: NodeID, to: NodeID) {
        _ = state.withLockedValue { $0.cutLinks.remove(Link(from: from, to: to)) }
    }

    /// Cuts every link between `node` and the other nodes, both directions.
    public func isolate(_ node: NodeID) {
        state.withLockedValue { state in
            for other in state.endpoints.keys where other != node {
                state.cutLinks.insert(Link(from: node, to: other))
                state.cutLinks.insert(Link(from: other, to: node))
            }
        }
    }

    /// Restores every link and removes the drop and delay rules.
    public func healAll() {
        state.withLockedValue { state in
            state.cutLinks = []
            state.dropProbability = 0
            state.dropRule = nil
            state.delayRule = nil
        }
    }

    /// Whether the link from `from` to `to` is cut.
    public func isCut(from: NodeID, to: NodeID) -> Bool {
        state.withLockedValue { $0.cutLinks.contains(Link(from: from, to: to)) }
    }

    /// Drops each message with probability `probability` (0...1), drawn from the
    /// hub's seeded generator.
    public func setDropProbability(_ probability: Double) {
        state.withLockedValue { $0.dropProbability = min(1, max(0, probability)) }
    }

    /// Drops every message for which `rule` returns `true`; `nil` removes the rule.
    public func setDropRule(_ rule: (@Sendable (Message) -> Bool)?) {
        state.withLockedValue { $0.dropRule = rule }
    }

    /// Delays every message for which `rule` returns a duration; `nil` removes the rule.
    public func setDelayRule(_ rule: (@Sendable (Message) -> Duration?)?) {
        state.withLockedValue { $0.delayRule = rule }
    }

    /// The number of messages held by the delay rule.
    public var delayedCount: Int {
        state.withLockedValue { $0.delayed.count }
    }

    /// Delivers the delayed messages whose delay has passed at `now`. Returns how many.
    @discardableResult
    public func deliverDueMessages(now: ContinuousClock.Instant = .now) -> Int {
        let due = state.withLockedValue { state -> [Message] in
            var due: [Message] = []
            state.delayed.removeAll { held in
                guard held.deadline <= now else { return false }
                due.append(held.message)
                return true
            }
            return due
        }
        deliver(due, delayable: false)
        return due.count
    }

    /// Delivers every delayed message now, in the order they were sent. Returns how many.
    @discardableResult
    public func releaseDelayedMessages() -> Int {
        let held = state.withLockedValue { state -> [Message] in
            defer { state.delayed = [] }
            return state.delayed.map(\.message)
        }
        deliver(held, delayable: false)
        return held.count
    }

    /// Delivers delayed messages as they fall due until the calling task is cancelled.
    public func run(pollInterval: Duration = .milliseconds(1)) async {
        while !Task.isCancelled {
            deliverDueMessages()
            do { try await Task.sleep(for: pollInterval) } catch { return }
        }
    }

    // MARK: Routing

    /// A snapshot of the counters of node `id`.
    func stats(of id: NodeID) -> TransportStats {
        state.withLockedValue { $0.endpoints[id]?.stats ?? TransportStats() }
    }

    /// Routes messages sent by `sender`: cut links, drop rules and delays apply.
    func route(_ messages: [Message], from sender: NodeID) {
        deliver(messages, delayable: true, sender: sender)
    }

    private func deliver(_ messages: [Message], delayable: Bool, sender: NodeID? = nil) {
        guard !messages.isEmpty else { return }
        let now = ContinuousClock.now
        // Batches per receiver, in send order; yielded after the lock is released.
        let batches = state.withLockedValue { state -> [(AsyncStream<[Message]>.Continuation, [Message])] in
            var byReceiver: [NodeID: [Message]] = [:]
            var order: [NodeID] = []
            for message in messages {
                let source = sender ?? message.from
                if shouldDrop(message, state: &state) {
                    state.endpoints[source]?.stats.messagesDropped += 1
                    state.endpoints[source]?.stats.peers[message.to, default: PeerStats()].messagesDropped += 1
                    continue
                }
                if delayable, let delay = state.delayRule?(message) {
                    state.delayed.append(Delayed(deadline: now.advanced(by: delay), message: message))
                    continue
                }
                state.endpoints[source]?.stats.messagesSent += 1
                state.endpoints[source]?.stats.peers[message.to, default: PeerStats()].messagesSent += 1
                state.endpoints[message.to]?.stats.messagesReceived += 1
                if byReceiver[message.to] == nil { order.append(message.to) }
                byReceiver[message.to, default: []].append(message)
            }
            return order.compactMap { receiver in
                guard let endpoint = state.endpoints[receiver], let batch = byReceiver[receiver] else { return nil }
                return (endpoint.continuation, batch)
            }
        }
        for (continuation, batch) in batches {
            if case .dropped = continuation.yield(batch) {
                state.withLockedValue { state in
                    guard let receiver = batch.first?.to else { return }
                    state.endpoints[receiver]?.stats.inboundDropped += UInt64(batch.count)
                }
            }
        }
    }

    private func shouldDrop(_ message: Message, state: inout State) -> Bool {
        if state.endpoints[message.to] == nil || state.endpoints[message.from] == nil { return true }
        if state.cutLinks.contains(Link(from: message.from, to: message.to)) { return true }
        if let rule = state.dropRule, rule(message) { return true }
        if state.dropProbability > 0 {
            let draw = Double(state.generator.next() >> 11) / Double(UInt64(1) << 53)
            if draw < state.dropProbability { return true }
        }
        return false
    }
}

/// The transport of one node attached to an `InMemoryNetwork`.
public final class InMemoryTransport: Transport {
    /// The node this transport belongs to.
    public let localID: NodeID
    /// The hub this transport is attached to.
    public let network: InMemoryNetwork
    /// Messages received from other nodes of the hub.
    public let inbound: AsyncStream<[Message]>

    init(localID: NodeID, network: InMemoryNetwork, inbound: AsyncStream<[Message]>) {
        self.localID = localID
        self.network = network
        self.inbound = inbound
    }

    /// The other nodes attached to the hub.
    public var peers: [NodeID] {
        network.nodes.filter { $0 != localID }
    }

    /// Routes the messages through the hub. A message whose `from` is not this node is
    /// sent as it is (tests may forge senders), but counted for this node.
    public func send(_ messages: [Message]) {
        network.route(messages, from: localID)
    }

    /// This node's counters.
    public var stats: TransportStats {
        network.stats(of: localID)
    }
}
