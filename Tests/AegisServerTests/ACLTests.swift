import AegisTestKit
import AegisKV
@testable import AegisServer
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import Testing

@Suite struct ACLTests {
    let backend = FakeBackend()

    func session(_ acl: ACLStore, throttle: RESPAuthThrottle = RESPAuthThrottle(), logger: Logger? = nil) -> RESPSession {
        RESPSession(backend: backend, configuration: RESPServerConfiguration(port: 7001, authThrottle: throttle),
                    acl: acl, logger: logger ?? Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// A store whose default user needs `admin-pw`, with a read-only user `reader`
    /// limited to `public:*` and a read-write user `writer` on every key.
    func store() throws -> ACLStore {
        let acl = ACLStore(defaultPassword: "admin-pw")
        try acl.setUser("reader", rules: ["on", ">read-pw", "~public:*", "-@all", "+@read"])
        try acl.setUser("writer", rules: ["on", ">write-pw", "allkeys", "+@read", "+@write"])
        return acl
    }

    @Test func test_readOnlyUser_cannotWrite() async throws {
        var s = session(try store())
        #expect(try await send(&s, "GET", "public:a") == .error("NOAUTH Authentication required."))
        #expect(try await send(&s, "AUTH", "reader", "read-pw") == .ok)
        #expect(try await send(&s, "ACL", "WHOAMI") == .bulk("reader"))
        #expect(try await send(&s, "GET", "public:a") == .null)
        #expect(try await send(&s, "SET", "public:a", "x") == .error("NOPERM User reader has no permissions to run the 'set' command"))
        #expect(try await send(&s, "INCR", "public:n") == .error("NOPERM User reader has no permissions to run the 'incr' command"))
        #expect(try await send(&s, "DEL", "public:a") == .error("NOPERM User reader has no permissions to run the 'del' command"))
        #expect(try await send(&s, "ACL", "SETUSER", "reader", "+@all") == .error("NOPERM User reader has no permissions to run the 'acl' command"))
        #expect(try await send(&s, "PING") == .simpleString("PONG"))  // connection commands stay allowed
        #expect(await backend.executedCount == 0)
    }

    @Test func test_keyPatterns_enforcedOnEveryKey() async throws {
        var s = session(try store())
        #expect(try await send(&s, "AUTH", "reader", "read-pw") == .ok)
        #expect(try await send(&s, "GET", "private:a") == .error("NOPERM No permissions to access a key"))
        #expect(try await send(&s, "MGET", "public:a", "private:b") == .error("NOPERM No permissions to access a key"))
        #expect(try await send(&s, "EXISTS", "public:a", "public:b") == .integer(0))
        let acl = try store()
        try acl.setUser("w2", rules: ["on", "nopass", "~app:[ab]?", "+@write", "+get"])
        var w = session(acl)
        #expect(try await send(&w, "AUTH", "w2", "anything") == .ok)
        #expect(try await send(&w, "SET", "app:a1", "v") == .ok)
        #expect(try await send(&w, "SET", "app:c1", "v") == .error("NOPERM No permissions to access a key"))
        // MSET checks every key (step 2: the values are not keys).
        #expect(try await send(&w, "MSET", "app:b1", "app:c9", "app:b2", "v") == .ok)
        #expect(try await send(&w, "MSET", "app:b1", "v", "zzz", "v") == .error("NOPERM No permissions to access a key"))
        #expect(try await send(&w, "GET", "app:b2") == .bulk("v"))
        #expect(try await send(&w, "MGET", "app:b2") == .error("NOPERM User w2 has no permissions to run the 'mget' command"))
    }

    @Test func test_aclCommands_manageUsers_passwordsHashed() async throws {
        let acl = try store()
        var admin = session(acl)
        #expect(try await send(&admin, "AUTH", "admin-pw") == .ok)
        #expect(try await send(&admin, "ACL", "SETUSER", "tmp", "on", ">p1", "~k*", "+@read") == .ok)
        guard case .array(let list) = try await send(&admin, "ACL", "LIST") else { Issue.record("ACL LIST"); return }
        let lines = list.compactMap(\.text)
        let tmpLine = "user tmp on #\(hex(sha256("p1"))) ~k* resetchannels -@all +@read"
        #expect(lines.contains(tmpLine))
        #expect(!lines.joined().contains("p1 "))  // no password in clear
        #expect(!lines.joined().contains("admin-pw"))
        #expect(try await send(&admin, "ACL", "USERS") == .array([.bulk("default"), .bulk("reader"), .bulk("tmp"), .bulk("writer")]))
        guard case .array(let fields) = try await send(&admin, "ACL", "GETUSER", "tmp"), fields.count == 12 else {
            Issue.record("ACL GETUSER"); return
        }
        #expect(fields[1] == .array([.bulk("on")]))
        #expect(fields[7] == .bulk("~k*"))
        #expect(try await send(&admin, "ACL", "GETUSER", "nobody") == .null)
        #expect(try await send(&admin, "ACL", "SETUSER", "tmp", "+@nosuch") == .error(
            "ERR Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL"))

        // A second connection logged in as tmp loses its rights when they change.
        var other = session(acl)
        #expect(try await send(&other, "AUTH", "tmp", "p1") == .ok)
        #expect(try await send(&other, "GET", "k1") == .null)
        #expect(try await send(&admin, "ACL", "SETUSER", "tmp", "-@read") == .ok)
        #expect(try await send(&other, "GET", "k1") == .error("NOPERM User tmp has no permissions to run the 'get' command"))
        #expect(try await send(&admin, "ACL", "SETUSER", "tmp", "<p1", ">p2") == .ok)
        #expect(try await send(&other, "AUTH", "tmp", "p1") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try await send(&admin, "ACL", "DELUSER", "tmp", "ghost") == .integer(1))
        #expect(try await send(&other, "GET", "k1") == .error("NOAUTH Authentication required."))
        #expect(try await send(&admin, "ACL", "DELUSER", "default") == .error("ERR The 'default' user cannot be removed"))
        #expect(try await send(&admin, "ACL", "SETUSER", "off-user", ">x", "+@all", "allkeys") == .ok)
        #expect(try await send(&other, "AUTH", "off-user", "x") == .error("WRONGPASS invalid username-password pair or user is disabled."))
    }

    @Test func test_defaultUser_password_and_helloAuth() async throws {
        var s = session(ACLStore(defaultPassword: "pw"))
        #expect(try await send(&s, "AUTH", "default", "nope") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        guard case .map = try await send(&s, "HELLO", "3", "AUTH", "default", "pw") else { Issue.record("HELLO AUTH"); return }
        #expect(try await send(&s, "ACL", "WHOAMI") == .bulk("default"))
        var open = session(ACLStore())
        #expect(try await send(&open, "SET", "k", "v") == .ok)  // default nopass: served at once
        #expect(try await send(&open, "AUTH", "x") == .error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
    }

    @Test func test_aclFile_loadAndSave() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("aegis-acl-\(UUID().uuidString).acl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "# users\nuser default on >root ~* +@all\nuser ro on >r ~* -@all +@read\n".write(toFile: path, atomically: true, encoding: .utf8)
        let acl = try ACLStore(file: path)
        var s = session(acl)
        #expect(try await send(&s, "AUTH", "ro", "r") == .ok)
        #expect(try await send(&s, "SET", "k", "v") == .error("NOPERM User ro has no permissions to run the 'set' command"))
        var admin = session(acl)
        #expect(try await send(&admin, "AUTH", "root") == .ok)
        #expect(try await send(&admin, "ACL", "SETUSER", "ro", "+@write") == .ok)
        #expect(try await send(&admin, "ACL", "SAVE") == .ok)
        let saved = try String(contentsOfFile: path, encoding: .utf8)
        #expect(saved.contains("user ro on #\(hex(sha256("r"))) ~* resetchannels -@all +@read +@write"))
        #expect(!saved.contains(">root"))
        let reloaded = try ACLStore(file: path)
        #expect(reloaded.users == acl.users)
        try "user ro on bogus\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await send(&admin, "ACL", "LOAD") == .error("ERR \(path):1: Error in ACL SETUSER modifier 'bogus': Syntax error"))
        #expect(try await send(&s, "SET", "k", "v") == .ok)  // nothing changed
    }

    @Test func test_authenticate_comparesDigests() throws {
        let acl = try store()
        #expect(acl.authenticate(username: "reader", password: "read-pw")?.name == "reader")
        #expect(acl.authenticate(username: "reader", password: "read-pw ") == nil)
        #expect(acl.authenticate(username: "reade", password: "read-pw") == nil)
        #expect(acl.authenticate(username: "writer", password: "read-pw") == nil)
        #expect(acl.authenticate(username: "default", password: "admin-pw")?.name == "default")
    }

    @Test func test_glob_likeRedis() {
        #expect(globMatch("a*c", "abbbc"))
        #expect(globMatch("a?c", "abc"))
        #expect(!globMatch("a?c", "ac"))
        #expect(globMatch("h[ae]llo", "hello"))
        #expect(!globMatch("h[^e]llo", "hello"))
        #expect(globMatch("h[a-c]llo", "hbllo"))
        #expect(globMatch("a\\*", "a*"))
        #expect(!globMatch("a\\*", "ab"))
        #expect(globMatch("*", ""))
        #expect(!globMatch("public:*", "private:x"))
    }

    /// 100 wrong AUTHs: every one refused, the connection slowed down after three and
    /// closed after ten, and at most a burst of log lines for all of them.
    @Test func test_wrongAuths_refused_throttled_closed_logRateLimited() async throws {
        let recorder = LogRecorder()
        let throttle = RESPAuthThrottle(freeFailures: 3, baseDelay: .milliseconds(4), maxDelay: .milliseconds(16), maxFailures: 10)
        let acl = try store()
        let context = RESPServerContext(configuration: RESPServerConfiguration(authThrottle: throttle), backend: backend,
                                        metrics: RESPMetrics(factory: AegisMetrics.factory(recordingInto: PrometheusCollectorRegistry())), acl: acl,
                                        logger: recorder.logger())
        var refused = 0
        var closes = 0
        var session = RESPSession(server: context, clientID: 1)
        let start = ContinuousClock.now
        for attempt in 0 ..< 100 {
            var out = ByteBuffer()
            let open = await session.handle([RESPRequest("AUTH", "reader", "guess\(attempt)")], into: &out)
            if try RESPValueParser.parse(&out) == RESPError.wrongPass { refused += 1 }
            if !open {
                closes += 1
                session = RESPSession(server: context, clientID: Int64(attempt + 2))
            }
        }
        let elapsed = ContinuousClock.now - start
        #expect(refused == 100)
        #expect(closes == 10)
        // Per connection: failures 4…10 wait 4+8+16+16+16+16+16 ms = 92 ms; ten connections.
        #expect(elapsed >= .milliseconds(900))
        let lines = recorder.records.filter { $0.message == "authentication failed" }
        // At most 5 lines per 10 s window (a loaded machine can stretch the loop over
        // several windows); far fewer than the 100 failures either way.
        let windows = Int(elapsed.components.seconds / 10) + 1
        #expect(lines.count >= 1 && lines.count <= 5 * windows, "\(lines.count) log lines for 100 failures in \(elapsed)")
        #expect(lines.first?.metadata["user"] == "reader")
        #expect(!recorder.records.contains { $0.metadata.values.contains { $0.contains("guess") } })  // no password in the log
        // The right password still works on a fresh connection.
        var out = ByteBuffer()
        _ = await session.handle([RESPRequest("AUTH", "reader", "read-pw")], into: &out)
        #expect(try RESPValueParser.parse(&out) == .ok)
    }

    /// A guesser that reconnects after every failure is counted per address: its
    /// eleventh try, on a fresh connection, is delayed and closes the connection.
    @Test func test_wrongAuths_countedPerAddressAcrossConnections() async throws {
        // Failures are forgotten after an hour here, not the default minute: in the full
        // parallel test run this task was once starved for over a minute between tries.
        let throttle = RESPAuthThrottle(freeFailures: 3, baseDelay: .milliseconds(20), maxDelay: .milliseconds(20), maxFailures: 10,
                                        forgetAfter: .seconds(3600))
        let context = RESPServerContext(configuration: RESPServerConfiguration(authThrottle: throttle), backend: backend,
                                        metrics: RESPMetrics(factory: AegisMetrics.factory(recordingInto: PrometheusCollectorRegistry())),
                                        acl: try store(), logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        func attempt(from host: String, _ password: String) async throws -> (RESPValue?, open: Bool, Duration) {
            var session = RESPSession(server: context, clientID: 1)
            session.remoteHost = host
            var out = ByteBuffer()
            let start = ContinuousClock.now
            let open = await session.handle([RESPRequest("AUTH", "reader", password)], into: &out)
            return (try RESPValueParser.parse(&out), open, ContinuousClock.now - start)
        }
        for n in 0 ..< 3 {
            let (_, open, took) = try await attempt(from: "10.0.0.1", "guess\(n)")
            #expect(open && took < .milliseconds(20))
        }
        for n in 3 ..< 9 {
            let (reply, open, took) = try await attempt(from: "10.0.0.1", "guess\(n)")
            #expect(reply == RESPError.wrongPass && open && took >= .milliseconds(20), "try \(n + 1)")
        }
        let (tenth, tenthOpen, _) = try await attempt(from: "10.0.0.1", "guess9")
        #expect(tenth == RESPError.wrongPass && !tenthOpen)
        // Another address is not slowed down; the right password is never delayed.
        let (_, otherOpen, otherTook) = try await attempt(from: "10.0.0.2", "guess")
        #expect(otherOpen && otherTook < .milliseconds(20))
        let (right, rightOpen, rightTook) = try await attempt(from: "10.0.0.1", "read-pw")
        #expect(right == .ok && rightOpen && rightTook < .milliseconds(20))
    }

    @Test func test_failuresByAddress_boundedAndForgotten() {
        let tracker = AuthFailuresByAddress(throttle: RESPAuthThrottle(forgetAfter: .seconds(60), maxAddresses: 100))
        let start = ContinuousClock.now
        for n in 0 ..< 1_000 { _ = tracker.recordFailure(from: "10.0.\(n / 256).\(n % 256)", now: start) }
        #expect(tracker.count <= 100)
        #expect(tracker.recordFailure(from: "192.0.2.1", now: start) == 1)
        #expect(tracker.recordFailure(from: "192.0.2.1", now: start + .seconds(1)) == 2)
        #expect(tracker.recordFailure(from: "192.0.2.1", now: start + .seconds(120)) == 1)
    }

    @Test func test_throttle_delays() {
        let throttle = RESPAuthThrottle(freeFailures: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(1), maxFailures: 10)
        #expect(throttle.delay(afterFailures: 3) == .zero)
        #expect(throttle.delay(afterFailures: 4) == .milliseconds(100))
        #expect(throttle.delay(afterFailures: 5) == .milliseconds(200))
        #expect(throttle.delay(afterFailures: 8) == .seconds(1))
        #expect(throttle.delay(afterFailures: 1_000) == .seconds(1))
    }
}
