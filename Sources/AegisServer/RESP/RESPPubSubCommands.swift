import AegisKV
import NIOCore

/// Pub/sub: `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `PUBLISH`, `PUBSUB`.
///
/// Messages are pushed to the connection as they are delivered (RESP2: `message` /
/// `pmessage` arrays; RESP3: push values). In RESP2 a connection with subscriptions
/// accepts only the subscription commands, `PING`, `QUIT` and `RESET`, as Redis does.
extension RESPSession {
    static let subscriptionCommands: Set<String> = ["SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE"]
    static let allowedWhileSubscribed: Set<String> = subscriptionCommands.union(["PING", "QUIT", "RESET"])

    /// The refusal of `name` on a RESP2 connection that has subscriptions, or `nil`.
    func subscribedModeRefusal(_ name: String) -> RESPValue? {
        guard subscriptions > 0, version == .resp2, !Self.allowedWhileSubscribed.contains(name) else { return nil }
        return .error("ERR Can't execute '\(name.lowercased())': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
    }

    /// Runs a subscription command: one confirmation per channel or pattern.
    mutating func subscription(_ name: String, _ arguments: ArraySlice<ByteBuffer>) -> [RESPValue] {
        let hub = server.pubsub
        let names = arguments.map { Array(buffer: $0) }
        let patterns = name.hasPrefix("P")
        let kind = name.lowercased()
        func confirmation(_ channel: [UInt8]?, _ count: Int) -> RESPValue {
            let elements: [RESPValue] = [.bulk(kind), channel.map(RESPValue.bulkString) ?? .null, .integer(Int64(count))]
            return version == .resp3 ? .push(elements) : .array(elements)
        }
        if name.hasSuffix("UNSUBSCRIBE") {
            let removed = hub.unsubscribe(clientID, channels: names, patterns: patterns)
            subscriptions = hub.subscriptionCount(clientID)
            if removed.isEmpty { return [confirmation(nil, subscriptions)] }
            return removed.map { confirmation($0.0, $0.1) }
        }
        guard let target = pushTarget else {
            return [.error("ERR this connection cannot receive pushed messages")]
        }
        let pushVersion = version
        let deliver: PubSubHub.Deliver = { kind, pattern, channel, message in
            target(PubSubPush.value(kind, pattern, channel, message, version: pushVersion))
        }
        guard let counts = hub.subscribe(clientID, channels: names, patterns: patterns, deliver: deliver) else {
            return [.error("ERR too many subscriptions: the limit is \(hub.maxSubscriptionsPerClient) channels and patterns per connection")]
        }
        subscriptions = counts.last ?? subscriptions
        return zip(names, counts).map { confirmation($0.0, $0.1) }
    }

    /// `PUBSUB CHANNELS [pattern] | NUMSUB [channel …] | NUMPAT`.
    func pubsubIntrospection(_ arguments: ArraySlice<ByteBuffer>) -> RESPValue {
        let hub = server.pubsub
        guard let sub = arguments.first.map({ String(buffer: $0).uppercased() }) else { return RESPError.wrongArity("PUBSUB") }
        let rest = arguments.dropFirst().map { Array(buffer: $0) }
        switch sub {
        case "CHANNELS" where rest.count <= 1:
            return .array(hub.activeChannels(matching: rest.first).map(RESPValue.bulkString))
        case "NUMSUB":
            return .array(zip(rest, hub.subscriberCounts(rest)).flatMap { [RESPValue.bulkString($0.0), .integer(Int64($0.1))] })
        case "NUMPAT" where rest.isEmpty:
            return .integer(Int64(hub.patternCount()))
        default:
            return RESPError.unknownSubcommand(sub, of: "PUBSUB")
        }
    }

    /// `PUBLISH channel message`, after it was applied: the number of this node's
    /// clients that received it.
    func published(_ channel: Key, _ message: [UInt8]) -> RESPValue {
        if !server.pubsub.fedByLog { return .integer(Int64(server.pubsub.publish(channel: channel.bytes, message: message))) }
        return .integer(Int64(server.pubsub.receivers(of: channel.bytes)))
    }
}

/// Turns a hub delivery into bytes on a connection.
enum PubSubPush {
    /// The `message` / `pmessage` value for `version`.
    static func value(_ kind: PubSubHub.DeliveryKind, _ pattern: [UInt8]?, _ channel: [UInt8], _ message: [UInt8],
                      version: RESPVersion) -> RESPValue {
        let elements: [RESPValue]
        switch kind {
        case .message: elements = [.bulk("message"), .bulkString(channel), .bulkString(message)]
        case .patternMessage: elements = [.bulk("pmessage"), .bulkString(pattern ?? []), .bulkString(channel), .bulkString(message)]
        }
        return version == .resp3 ? .push(elements) : .array(elements)
    }
}
