import AegisKV
import AegisServer
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUBLISH and PUBSUB through RESP sessions sharing
/// one server (a hub not fed by a log: delivery when PUBLISH completes).
@Suite struct RESPPubSubTests {
    let backend = FakeBackend()

    /// Two sessions of one server; the first collects what is pushed to it.
    func sessions() -> (subscriber: RESPSession, publisher: RESPSession, pushed: NIOLockedValueBox<[RESPValue]>) {
        var subscriber = RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001))
        let publisher = subscriber.sibling(clientID: 2)
        let pushed = NIOLockedValueBox<[RESPValue]>([])
        subscriber.pushTarget = { value in pushed.withLockedValue { $0.append(value) } }
        return (subscriber, publisher, pushed)
    }

    @Test func test_messagesReachSubscribersOfChannelsAndPatterns() async throws {
        var (sub, pub, pushed) = sessions()
        let confirmations = try await send(&sub, [["SUBSCRIBE", "news", "sport"]])
        #expect(confirmations == [.array([.bulk("subscribe"), .bulk("news"), .integer(1)]),
                                  .array([.bulk("subscribe"), .bulk("sport"), .integer(2)])])
        #expect(try await send(&sub, "PSUBSCRIBE", "n*") == .array([.bulk("psubscribe"), .bulk("n*"), .integer(3)]))
        #expect(try await send(&pub, "PUBLISH", "news", "hello") == .integer(2))  // channel and pattern
        #expect(try await send(&pub, "PUBLISH", "weather", "rain") == .integer(0))
        #expect(pushed.withLockedValue { $0 } == [
            .array([.bulk("message"), .bulk("news"), .bulk("hello")]),
            .array([.bulk("pmessage"), .bulk("n*"), .bulk("news"), .bulk("hello")]),
        ])
        #expect(try await send(&pub, "PUBSUB", "CHANNELS") == .array([.bulk("news"), .bulk("sport")]))
        #expect(try await send(&pub, "PUBSUB", "NUMSUB", "news", "none") == .array([.bulk("news"), .integer(1), .bulk("none"), .integer(0)]))
        #expect(try await send(&pub, "PUBSUB", "NUMPAT") == .integer(1))
    }

    @Test func test_subscribedRESP2Connection_acceptsOnlySubscriptionCommands() async throws {
        var (sub, _, _) = sessions()
        _ = try await send(&sub, "SUBSCRIBE", "a")
        #expect(try await send(&sub, "GET", "k") == .error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
        #expect(try await send(&sub, "PING") == .array([.bulk("pong"), .bulk("")]))
        #expect(try await send(&sub, "UNSUBSCRIBE") == .array([.bulk("unsubscribe"), .bulk("a"), .integer(0)]))
        #expect(try await send(&sub, "UNSUBSCRIBE") == .array([.bulk("unsubscribe"), .null, .integer(0)]))
        #expect(try await send(&sub, "GET", "k") == .null)  // out of subscribed mode
    }

    @Test func test_subscriptions_areBounded() async throws {
        var limits = RESPLimits()
        limits.maxSubscriptionsPerClient = 2
        var sub = RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001, limits: limits))
        sub.pushTarget = { _ in }
        let replies = try await send(&sub, [["SUBSCRIBE", "a", "b", "c"]])
        #expect(replies == [.error("ERR too many subscriptions: the limit is 2 channels and patterns per connection")])
        #expect(try await send(&sub, [["SUBSCRIBE", "a", "b"]]).count == 2)
    }
}
