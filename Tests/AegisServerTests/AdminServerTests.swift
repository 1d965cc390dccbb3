import AegisTestKit
import AegisKV
import AegisServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Testing

@Suite struct AdminServerTests {
    let backend = FakeBackend()
    let registry = PrometheusCollectorRegistry()

    /// The token `app()` is configured with by default.
    let auth: HTTPFields = [.authorization: "Bearer t"]

    func app(token: String? = "t", maxLag: UInt64 = 1000, logger: Logger = Logger(label: "test"),
             certificates: @escaping @Sendable () -> [ServedCertificate] = { [] }) -> some ApplicationProtocol {
        AdminServer(configuration: AdminServerConfiguration(port: 0, adminToken: token, maxReadyApplyLag: maxLag),
                    backend: backend, registry: registry, logger: logger, certificates: certificates).makeApplication()
    }

    @Test func test_livez_readyz_healthz_whenHealthy() async throws {
        try await app().test(.router) { client in
            for path in ["/livez", "/readyz", "/healthz"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ok")
            }
            let verbose = try await client.execute(uri: "/healthz?verbose", method: .get, headers: auth)
            #expect(String(buffer: verbose.body) == """
                [+]ping ok
                [+]node ok
                [+]leader ok
                [+]quorum ok
                [+]replay ok
                [+]apply-lag ok
                [+]disk ok
                [+]wal-fsync ok
                [+]peers ok
                [+]tls-certificates ok
                healthz check passed

                """)
            let ready = try await client.execute(uri: "/readyz?verbose", method: .get, headers: auth)
            #expect(String(buffer: ready.body) == """
                [+]ping ok
                [+]node ok
                [+]leader ok
                [+]quorum ok
                [+]replay ok
                [+]apply-lag ok
                readyz check passed

                """)
        }
    }

    @Test func test_readyz_failsWithoutLeaderOrWhenBehind_livezStillPasses() async throws {
        await backend.setStatus { $0.leader = nil; $0.role = .candidate; $0.commitIndex = 5000; $0.appliedIndex = 10 }
        try await app(maxLag: 100).test(.router) { client in
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            let body = String(buffer: ready.body)
            #expect(body.contains("[-]leader failed: no leader known (term 3)\n"))
            #expect(body.contains("[-]apply-lag failed: 4990 committed entries not applied"))
            #expect(body.hasSuffix("readyz check failed\n"))
            let health = try await client.execute(uri: "/healthz?verbose=1", method: .get, headers: auth)
            #expect(health.status == .serviceUnavailable)
            #expect(String(buffer: health.body).hasSuffix("healthz check failed\n"))
            let excluded = try await client.execute(uri: "/readyz?exclude=leader&exclude=apply-lag", method: .get)
            #expect(excluded.status == .ok)
            #expect(try await client.execute(uri: "/livez", method: .get).status == .ok)
        }
    }

    @Test func test_metrics_emitsPrometheusText() async throws {
        // Creating a RESP server registers its metrics in the registry /metrics emits.
        _ = RESPServer(configuration: RESPServerConfiguration(port: 0), backend: backend, logger: Logger(label: "t"),
                       metricsFactory: AegisMetrics.factory(recordingInto: registry))
        try await app().test(.router) { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = String(buffer: response.body)
            #expect(text.contains("# TYPE aegis_resp_commands_total counter"))
            #expect(text.contains(#"aegis_resp_commands_total{command="set"} 0"#))
        }
    }

    @Test func test_cluster_status_json() async throws {
        try await app().test(.router) { client in
            #expect(try await client.execute(uri: "/v1/cluster", method: .get).status == .unauthorized)
            let response = try await client.execute(uri: "/v1/cluster", method: .get, headers: auth)
            #expect(response.status == .ok)
            let document = try JSONDecoder().decode(ClusterStatusDocument.self, from: Data(response.body.readableBytesView))
            #expect(document.nodeID == "node1")
            #expect(document.leader == "node1")
            #expect(document.leaderClientAddress == "127.0.0.1:7001")
            #expect(document.term == 3)
            #expect(document.members.map(\.id) == ["node1", "node2"])
            #expect(document.members[1].lag == 0)
        }
    }

    @Test func test_membership_and_transfer_requireTokenAndCallBackend() async throws {
        try await app(token: "s3cret").test(.router) { client in
            let body = ByteBuffer(string: #"{"id":"node4","peerAddress":"127.0.0.1:9004","clientAddress":"127.0.0.1:7004"}"#)
            let unauthorized = try await client.execute(uri: "/v1/cluster/members", method: .post, body: body)
            #expect(unauthorized.status == .unauthorized)
            #expect(unauthorized.headers[.wwwAuthenticate] == "Bearer")
            let wrong = try await client.execute(uri: "/v1/cluster/members", method: .post,
                                                 headers: [.authorization: "Bearer nope"], body: body)
            #expect(wrong.status == .unauthorized)
            #expect(await backend.adminCalls.isEmpty)

            let auth: HTTPFields = [.authorization: "Bearer s3cret"]
            let added = try await client.execute(uri: "/v1/cluster/members", method: .post, headers: auth, body: body)
            #expect(added.status == .ok)
            let document = try JSONDecoder().decode(ClusterStatusDocument.self, from: Data(added.body.readableBytesView))
            #expect(document.members.last?.role == "learner")
            #expect(try await client.execute(uri: "/v1/cluster/members/node4/promote", method: .post, headers: auth).status == .ok)
            #expect(try await client.execute(uri: "/v1/cluster/members/node4", method: .delete, headers: auth).status == .ok)
            #expect(try await client.execute(uri: "/v1/cluster/transfer-leader", method: .post, headers: auth,
                                             body: ByteBuffer(string: #"{"target":"node2"}"#)).status == .ok)
            #expect(try await client.execute(uri: "/v1/cluster/transfer-leader", method: .post, headers: auth).status == .ok)
            #expect(await backend.adminCalls == [
                "add node4 127.0.0.1:9004 127.0.0.1:7004 learner=true", "promote node4", "remove node4",
                "transfer node2", "transfer any",
            ])
            let bad = try await client.execute(uri: "/v1/cluster/members", method: .post, headers: auth, body: ByteBuffer(string: "{"))
            #expect(bad.status == .badRequest)
            // Reads of status need the token too.
            #expect(try await client.execute(uri: "/v1/cluster", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/v1/cluster", method: .get, headers: auth).status == .ok)
        }
    }

    @Test func test_backendErrors_mapToHTTPStatus() async throws {
        try await app().test(.router) { client in
            await backend.setFailure(.rejected("a configuration change is already in progress"))
            #expect(try await client.execute(uri: "/v1/cluster/members/node2", method: .delete, headers: auth).status == .conflict)
            await backend.setFailure(.noLeader(lastKnownLeader: LeaderHint(id: "node2", clientAddress: "127.0.0.1:7002")))
            let response = try await client.execute(uri: "/v1/kv/k", method: .put, headers: auth, body: ByteBuffer(string: "v"))
            #expect(response.status == .serviceUnavailable)
            let error = try JSONDecoder().decode(AdminErrorDocument.self, from: Data(response.body.readableBytesView))
            #expect(error.leader == "node2")
            #expect(error.leaderClientAddress == "127.0.0.1:7002")
            await backend.setFailure(.timeout(milliseconds: 100))
            #expect(try await client.execute(uri: "/v1/kv/k", method: .get, headers: auth).status == .gatewayTimeout)
        }
    }

    @Test func test_kv_putGetDelete() async throws {
        try await app(token: "t").test(.router) { client in
            #expect(try await client.execute(uri: "/v1/kv/a%2Fb", method: .put, body: ByteBuffer(string: "x")).status == .unauthorized)
            #expect(try await client.execute(uri: "/v1/kv/a%2Fb", method: .get).status == .unauthorized)
            let put = try await client.execute(uri: "/v1/kv/a%2Fb", method: .put, headers: auth, body: ByteBuffer(string: "raw value"))
            #expect(put.status == .ok)
            let got = try await client.execute(uri: "/v1/kv/a%2Fb", method: .get, headers: auth)
            let document = try JSONDecoder().decode(KeyValueDocument.self, from: Data(got.body.readableBytesView))
            #expect(document.key == "a/b")
            #expect(document.value == "raw value")
            #expect(document.version == 1)
            // JSON bodies, stale reads, keys with slashes in the path.
            var json = auth
            json[.contentType] = "application/json"
            #expect(try await client.execute(uri: "/v1/kv/a/b", method: .put, headers: json, body: ByteBuffer(string: #"{"value":"v2"}"#)).status == .ok)
            let stale = try await client.execute(uri: "/v1/kv/a/b?stale=true", method: .get, headers: auth)
            #expect(try JSONDecoder().decode(KeyValueDocument.self, from: Data(stale.body.readableBytesView)).value == "v2")
            #expect(await backend.readStaleFlags == [false, true])
            #expect(try await client.execute(uri: "/v1/kv/a/b", method: .put, headers: json, body: ByteBuffer(string: "v")).status == .badRequest)
            // Compare-and-swap on the version.
            #expect(try await client.execute(uri: "/v1/kv/a/b?ifVersion=1", method: .put, headers: auth, body: ByteBuffer(string: "v3")).status == .preconditionFailed)
            #expect(try await client.execute(uri: "/v1/kv/a/b?ifVersion=2", method: .put, headers: auth, body: ByteBuffer(string: "v3")).status == .ok)
            #expect(try await client.execute(uri: "/v1/kv/fresh?ifVersion=0", method: .put, headers: auth, body: ByteBuffer(string: "new")).status == .ok)
            let deleted = try await client.execute(uri: "/v1/kv/a/b", method: .delete, headers: auth)
            #expect(try JSONDecoder().decode(KeyValueDocument.self, from: Data(deleted.body.readableBytesView)).deleted == true)
            let again = try await client.execute(uri: "/v1/kv/a/b", method: .delete, headers: auth)
            #expect(try JSONDecoder().decode(KeyValueDocument.self, from: Data(again.body.readableBytesView)).deleted == false)
            #expect(try await client.execute(uri: "/v1/kv/a/b", method: .get, headers: auth).status == .notFound)
        }
    }

    /// Every endpoint but the probes and /metrics is refused without the token, also
    /// when no token is configured (403, saying how to set one), and the refusals are
    /// logged at a bounded rate.
    @Test func test_noToken_refusedAndLogged() async throws {
        let recorder = LogRecorder()
        let protected: [(String, HTTPRequest.Method)] = [
            ("/v1/cluster", .get), ("/v1/cluster/members", .post), ("/v1/cluster/members/node2/promote", .post),
            ("/v1/cluster/members/node2", .delete), ("/v1/cluster/transfer-leader", .post), ("/v1/kv/k", .get),
            ("/v1/kv/k", .put), ("/v1/kv/k", .delete), ("/healthz?verbose", .get), ("/readyz?verbose", .get),
        ]
        try await app(token: nil, logger: recorder.logger()).test(.router) { client in
            for (path, method) in protected {
                let response = try await client.execute(uri: path, method: method, headers: auth, body: ByteBuffer(string: "v"))
                #expect(response.status == .forbidden, "\(method) \(path)")
                #expect(String(buffer: response.body).contains("--admin-token"))
            }
            for path in ["/livez", "/readyz", "/healthz", "/metrics"] {
                #expect(try await client.execute(uri: path, method: .get).status == .ok, "\(path)")
            }
        }
        try await app(token: "right", logger: recorder.logger()).test(.router) { client in
            for _ in 0 ..< 20 {
                let response = try await client.execute(uri: "/v1/kv/k", method: .put, headers: auth, body: ByteBuffer(string: "v"))
                #expect(response.status == .unauthorized)
            }
        }
        #expect(await backend.executedCount == 0)
        #expect(await backend.adminCalls.isEmpty)
        let refusals = recorder.records.filter { $0.message.hasPrefix("admin request refused") }
        #expect(refusals.first?.metadata["path"] == "/v1/cluster")
        // 10 + 20 refusals, at most 5 lines per server and window: fewer lines than
        // refusals (a loaded machine can stretch the requests over several windows, so
        // the bound is not 10).
        #expect(refusals.count >= 2 && refusals.count < 30, "\(refusals.count) lines")
        #expect(!recorder.records.contains { $0.metadata.values.contains { $0.contains("Bearer") } })
    }

    @Test func test_certificateExpiry_warnsAndIsAMetric() async throws {
        let soon = Date().addingTimeInterval(5 * 86_400 + 3_600)
        let later = Date().addingTimeInterval(300 * 86_400)
        try await app(certificates: { [ServedCertificate(name: "node", notValidAfter: soon),
                                       ServedCertificate(name: "ca", notValidAfter: later)] }).test(.router) { client in
            let health = try await client.execute(uri: "/healthz?verbose", method: .get, headers: auth)
            #expect(health.status == .ok)
            let body = String(buffer: health.body)
            #expect(body.contains("[!]tls-certificates warn: node certificate expires in 5 days"), "\(body)")
            #expect(!body.contains("ca certificate"))
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            let line = metrics.split(separator: "\n").first { $0.hasPrefix(#"aegis_tls_certificate_expiry_seconds{certificate="node"}"#) }
            let seconds = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            #expect(seconds > 5 * 86_400 && seconds < 6 * 86_400, "\(line ?? "no line")")
        }
        let expired = Date().addingTimeInterval(-60)
        try await app(certificates: { [ServedCertificate(name: "node", notValidAfter: expired)] }).test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .serviceUnavailable)
            #expect(String(buffer: health.body).contains("[-]tls-certificates failed: node certificate expired"))
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
        }
    }
}
