import AegisKV
import AegisRaft
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

    @Test func test_keyspaceNotifications_followAppliedWrites() async throws {
        let hub = PubSubHub(fedByLog: true)
        var sub = RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001), pubsub: hub)
        let pushed = NIOLockedValueBox<[RESPValue]>([])
        sub.pushTarget = { value in pushed.withLockedValue { $0.append(value) } }
        var admin = sub.sibling(clientID: 2)
        #expect(try await send(&admin, "CONFIG", "SET", "notify-keyspace-events", "Kx") == .ok)
        #expect(try await send(&admin, "CONFIG", "SET", "notify-keyspace-events", "Kq") == .error(
            "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."))
        #expect(try await send(&admin, "CONFIG", "SET", "notify-keyspace-events", "E$s") == .ok)
        #expect(try await send(&admin, "CONFIG", "GET", "notify-keyspace-events") == .array([.bulk("notify-keyspace-events"), .bulk("$sE")]))
        _ = try await send(&sub, [["SUBSCRIBE", "__keyevent@0__:set", "__keyevent@0__:sadd", "__keyevent@0__:hset"]])
        func applied(_ command: Command, error: KVError? = nil) {
            hub.observer(LogEntry(index: 1, term: 1, data: command.encoded()), CommandResult(index: 1, revision: 1, error: error))
        }
        applied(.set("k1", [1]))
        applied(.collection("s", .setAdd([[1]])))
        applied(.collection("h", .hashSet([FieldValue([1], [2])])))  // class h is off
        applied(.set("k2", [1]), error: .wrongType)  // failed writes notify nothing
        applied(.publish(channel: "__keyevent@0__:set", message: Array("direct".utf8)))
        #expect(pushed.withLockedValue { $0 } == [
            .array([.bulk("message"), .bulk("__keyevent@0__:set"), .bulk("k1")]),
            .array([.bulk("message"), .bulk("__keyevent@0__:sadd"), .bulk("s")]),
            .array([.bulk("message"), .bulk("__keyevent@0__:set"), .bulk("direct")]),
        ])
    }
}
