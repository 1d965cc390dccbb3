public import AegisKV
public import AegisRaft
import NIOConcurrencyHelpers

/// The subscriptions of one node's RESP clients (`SUBSCRIBE`, `PSUBSCRIBE`) and the
/// delivery of published messages to them.
///
/// `PUBLISH` goes through the Raft log (`Command.publish`), so every node applies it
/// and hands it to its own hub (`observer`, set as `NodeConfiguration.onApplied`): a
/// message published on any node reaches the subscribers of every node, each in log
/// order. A hub that no log feeds (`fedByLog == false`, tests and embedded servers
/// without a runtime) delivers a message when the `PUBLISH` that sent it completes.
///
/// Memory is bounded: a client holds at most `maxSubscriptionsPerClient` channels and
/// patterns, and a delivery goes through the client's output buffer limits (a client
/// that does not read is disconnected, as Redis does).
public final class PubSubHub: Sendable {
    /// Delivers one message to a client; `false` if the client is gone or over its limits.
    public typealias Deliver = @Sendable (_ kind: DeliveryKind, _ pattern: [UInt8]?, _ channel: [UInt8], _ message: [UInt8]) -> Void

    /// What a delivery is.
    public enum DeliveryKind: Sendable { case message, patternMessage }

    struct Subscriber {
        var channels: Set<[UInt8]> = []
        var patterns: Set<[UInt8]> = []
        var deliver: Deliver
    }

    private let subscribers = NIOLockedValueBox<[Int64: Subscriber]>([:])
    /// `true` when a node's applied log feeds the hub (through `observer`).
    public let fedByLog: Bool
    /// The most channels plus patterns one client may subscribe to.
    public let maxSubscriptionsPerClient: Int

    /// Creates a hub.
    public init(fedByLog: Bool, maxSubscriptionsPerClient: Int = 10_000) {
        self.fedByLog = fedByLog
        self.maxSubscriptionsPerClient = maxSubscriptionsPerClient
    }

    /// The `AEGIS.WATCH` watches of this node's clients, woken by applied entries.
    public let watches = LogWatchHub()

    /// The keyspace notifications to publish (`CONFIG SET notify-keyspace-events`).
    let notificationFlags = NIOLockedValueBox(KeyspaceNotificationFlags.none)

    /// The hook for `NodeConfiguration.onApplied`: delivers `publish` entries and the
    /// keyspace notifications of writes, and wakes the watches.
    public var observer: @Sendable (LogEntry, CommandResult) -> Void {
        { [self] entry, result in
            applied(entry.data, result)
            watches.applied(entry.index)
        }
    }

    /// Delivers what an applied entry (or, without a log, a completed command) publishes.
    func applied(_ data: [UInt8], _ result: CommandResult) {
        if let (channel, message) = Command.publication(in: data) {
            publish(channel: channel.bytes, message: message)
        } else {
            notifyKeyspace(data, result)
        }
    }

    /// `true` when some client subscribes to something.
    var hasSubscribers: Bool { !subscribers.withLockedValue { $0.isEmpty } }

    /// The current `notify-keyspace-events` setting.
    public var keyspaceNotifications: KeyspaceNotificationFlags {
        get { notificationFlags.withLockedValue { $0 } }
        set { notificationFlags.withLockedValue { $0 = newValue } }
    }

    /// Delivers `message` to every subscriber of `channel` and of a matching pattern;
    /// returns how many deliveries were made.
    @discardableResult
    public func publish(channel: [UInt8], message: [UInt8]) -> Int {
        let targets = subscribers.withLockedValue { all -> [(Deliver, DeliveryKind, [UInt8]?)] in
            var targets: [(Deliver, DeliveryKind, [UInt8]?)] = []
            for subscriber in all.values {
                if subscriber.channels.contains(channel) { targets.append((subscriber.deliver, .message, nil)) }
                for pattern in subscriber.patterns where globMatch(pattern, channel) {
                    targets.append((subscriber.deliver, .patternMessage, pattern))
                }
            }
            return targets
        }
        for (deliver, kind, pattern) in targets { deliver(kind, pattern, channel, message) }
        return targets.count
    }

    /// How many clients would receive a message on `channel` now.
    public func receivers(of channel: [UInt8]) -> Int {
        subscribers.withLockedValue { all in
            all.values.reduce(0) { count, subscriber in
                count + (subscriber.channels.contains(channel) ? 1 : 0)
                    + subscriber.patterns.count { globMatch($0, channel) }
            }
        }
    }

    /// Adds subscriptions for `client`; returns its subscription count after each
    /// one, or `nil` (adding none) when they would exceed the limit.
    func subscribe(_ client: Int64, channels: [[UInt8]], patterns: Bool, deliver: @escaping Deliver) -> [Int]? {
        subscribers.withLockedValue { all in
            var subscriber = all[client] ?? Subscriber(deliver: deliver)
            subscriber.deliver = deliver
            let fresh = Set(channels).subtracting(patterns ? subscriber.patterns : subscriber.channels)
            guard subscriber.channels.count + subscriber.patterns.count + fresh.count <= maxSubscriptionsPerClient else { return nil }
            var counts: [Int] = []
            for channel in channels {
                if patterns { subscriber.patterns.insert(channel) } else { subscriber.channels.insert(channel) }
                counts.append(subscriber.channels.count + subscriber.patterns.count)
            }
            all[client] = subscriber
            return counts
        }
    }

    /// Removes `channels` (all of them when empty) of `client`; returns the removed
    /// names with the count left after each.
    func unsubscribe(_ client: Int64, channels: [[UInt8]], patterns: Bool) -> [([UInt8], Int)] {
        subscribers.withLockedValue { all in
            guard var subscriber = all[client] else { return [] }
            let names = channels.isEmpty ? (patterns ? subscriber.patterns : subscriber.channels).sorted { $0.lexicographicallyPrecedes($1) } : channels
            var result: [([UInt8], Int)] = []
            for name in names {
                if patterns { subscriber.patterns.remove(name) } else { subscriber.channels.remove(name) }
                result.append((name, subscriber.channels.count + subscriber.patterns.count))
            }
            all[client] = subscriber.channels.isEmpty && subscriber.patterns.isEmpty ? nil : subscriber
            return result
        }
    }

    /// The subscription count of `client`.
    func subscriptionCount(_ client: Int64) -> Int {
        subscribers.withLockedValue { all in all[client].map { $0.channels.count + $0.patterns.count } ?? 0 }
    }

    /// Drops every subscription of `client` (it disconnected).
    func remove(_ client: Int64) {
        _ = subscribers.withLockedValue { $0.removeValue(forKey: client) }
    }

    /// `PUBSUB CHANNELS [pattern]`: the channels with at least one subscriber.
    func activeChannels(matching pattern: [UInt8]?) -> [[UInt8]] {
        subscribers.withLockedValue { all in
            Set(all.values.flatMap(\.channels)).filter { channel in pattern.map { globMatch($0, channel) } ?? true }
                .sorted { $0.lexicographicallyPrecedes($1) }
        }
    }

    /// `PUBSUB NUMSUB`: subscribers per channel (patterns not counted, as in Redis).
    func subscriberCounts(_ channels: [[UInt8]]) -> [Int] {
        subscribers.withLockedValue { all in channels.map { channel in all.values.count { $0.channels.contains(channel) } } }
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns.
    func patternCount() -> Int {
        subscribers.withLockedValue { all in Set(all.values.flatMap(\.patterns)).count }
    }
}
