import AegisCluster
import AegisKV
import AegisRaft
@testable import AegisServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Testing

@Suite struct HealthTests {
    let backend = FakeBackend()
    let auth: HTTPFields = [.authorization: "Bearer t"]

    func server(_ configuration: AdminServerConfiguration = AdminServerConfiguration(port: 0, adminToken: "t"),
                freeSpace: (@Sendable (String) -> (free: UInt64, total: UInt64)?)? = nil) -> AdminServer {
        AdminServer(configuration: configuration, backend: backend, registry: PrometheusCollectorRegistry(),
                    logger: Logger(label: "test"), freeSpace: freeSpace)
    }

    /// Three voters; this node (node1) lost both peers: no quorum in its view.
    func loseQuorum() async {
        await backend.setStatus {
            $0.members = [
                MemberStatus(id: "node1", role: .follower, peerAddress: "127.0.0.1:9001", clientAddress: "127.0.0.1:7001", health: .healthy),
                MemberStatus(id: "node2", role: .follower, peerAddress: "127.0.0.1:9002", clientAddress: "127.0.0.1:7002", health: .down),
                MemberStatus(id: "node3", role: .follower, peerAddress: "127.0.0.1:9003", clientAddress: "127.0.0.1:7003", health: .suspect),
            ]
            $0.cluster = ClusterStats(totalNodes: 3, healthyNodes: 1, suspectNodes: 1, downNodes: 1, votingNodes: 3,
                                      quorumSize: 2, hasQuorum: false, leader: "node1", term: 3, state: .noQuorum)
        }
    }

    @Test func test_readyz_failsWhenTheNodeLostQuorum_livezPasses() async throws {
        await loseQuorum()
        try await server().makeApplication().test(.router) { client in
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(String(buffer: ready.body).contains("[-]quorum failed: 1 of 3 voters reachable, quorum 2, cluster noQuorum"))
            #expect(try await client.execute(uri: "/readyz/quorum", method: .get).status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/livez", method: .get).status == .ok)
            let peers = try await client.execute(uri: "/healthz/peers", method: .get)
            #expect(peers.status == .serviceUnavailable)
            #expect(String(buffer: peers.body) == "[-]peers failed: no peer reachable: node2 down, node3 suspect\nhealthz check failed\n")
        }
        // One peer back: quorum, ready; the other peer only warns.
        await backend.setStatus {
            $0.members[1].health = .healthy
            $0.cluster = ClusterStats(totalNodes: 3, healthyNodes: 2, suspectNodes: 1, downNodes: 0, votingNodes: 3,
                                      quorumSize: 2, hasQuorum: true, leader: "node1", term: 3, state: .degraded)
        }
        try await server().makeApplication().test(.router) { client in
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
            let health = try await client.execute(uri: "/healthz?verbose", method: .get, headers: auth)
            #expect(health.status == .ok)
            #expect(String(buffer: health.body).contains("[!]peers warn: 1 of 2 peers not reachable: node3 suspect\n"))
        }
    }

    @Test func test_readyz_failsWhileReplayingOrStopped() async throws {
        await backend.setStatus { $0.replaying = true }
        try await server().makeApplication().test(.router) { client in
            let body = String(buffer: try await client.execute(uri: "/readyz", method: .get).body)
            #expect(body.contains("[-]replay failed: replaying the log"))
        }
        await backend.setStatus { $0.replaying = false; $0.running = false; $0.failure = "storage failed: EIO" }
        try await server().makeApplication().test(.router) { client in
            let ready = try await client.execute(uri: "/readyz/node", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(String(buffer: ready.body).contains("the node stopped serving: storage failed: EIO"))
            #expect(try await client.execute(uri: "/livez", method: .get).status == .ok)
        }
    }

    @Test func test_disk_warnsBelowTheThreshold_failsWhenFull() async throws {
        let config = AdminServerConfiguration(port: 0, adminToken: "t", dataDirectory: "/data", minFreeDiskBytes: 10 << 30)
        let low = server(config, freeSpace: { _ in (free: 1 << 30, total: 100 << 30) })
        try await low.makeApplication().test(.router) { client in
            let disk = try await client.execute(uri: "/healthz/disk?verbose", method: .get, headers: auth)
            #expect(disk.status == .ok)  // a warning does not fail
            #expect(String(buffer: disk.body) == "[!]disk warn: 1073741824 bytes free of 107374182400 in /data, below the threshold of 10737418240 bytes\nhealthz check passed\n")
        }
        let plenty = server(config, freeSpace: { _ in (free: 50 << 30, total: 100 << 30) })
        try await plenty.makeApplication().test(.router) { client in
            let disk = try await client.execute(uri: "/healthz/disk?verbose", method: .get, headers: auth)
            #expect(String(buffer: disk.body).hasPrefix("[+]disk ok"))
        }
        // The real file system of a temporary directory, with a threshold it cannot meet.
        let real = server(AdminServerConfiguration(port: 0, adminToken: "t", dataDirectory: NSTemporaryDirectory(),
                                                   minFreeDiskBytes: .max))
        try await real.makeApplication().test(.router) { client in
            let body = String(buffer: try await client.execute(uri: "/healthz/disk?verbose", method: .get, headers: auth).body)
            #expect(body.hasPrefix("[!]disk warn: ") && body.contains("bytes free of"), "\(body)")
        }
        await backend.setStatus { $0.diskFull = true }
        try await plenty.makeApplication().test(.router) { client in
            let disk = try await client.execute(uri: "/healthz/disk", method: .get)
            #expect(disk.status == .serviceUnavailable)
            #expect(String(buffer: disk.body).contains("[-]disk failed: the disk is full"))
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
        }
    }

    @Test func test_walFsync_warnsOnASlowSync_failsOnASlowAverage() async throws {
        await backend.setStatus { $0.fsyncSeconds = 0.004; $0.slowestRecentFsyncSeconds = 0.250 }
        try await server().makeApplication().test(.router) { client in
            let body = String(buffer: try await client.execute(uri: "/healthz/wal-fsync?verbose", method: .get, headers: auth).body)
            #expect(body.hasPrefix("[!]wal-fsync warn: recent fsync average 4.0 ms, slowest 250.0 ms"), "\(body)")
        }
        await backend.setStatus { $0.fsyncSeconds = 3; $0.slowestRecentFsyncSeconds = 5 }
        try await server().makeApplication().test(.router) { client in
            let response = try await client.execute(uri: "/healthz/wal-fsync", method: .get)
            #expect(response.status == .serviceUnavailable)
        }
    }

    /// A dependency (here a replication link, registered as another component would)
    /// that fails fails `/healthz` and its path, never `/livez` or `/readyz`.
    @Test func test_failedDependency_failsHealthzAndItsPath_notLivezOrReadyz_excludeAndHealthJSON() async throws {
        let admin = server()
        try admin.health.register(HealthCheck(name: "dr-link", scope: .dependency) {
            HealthCheckResult.fail("no contact with the standby for 42 s").observed(42, "s")
        })
        try await admin.makeApplication().test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .serviceUnavailable)
            #expect(String(buffer: health.body).contains("[-]dr-link failed: no contact with the standby for 42 s\n"))
            #expect(try await client.execute(uri: "/healthz/dr-link", method: .get).status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/livez", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/readyz", method: .get).status == .ok)
            // Not a check of /readyz: 404 naming the checks it has.
            let missing = try await client.execute(uri: "/readyz/dr-link", method: .get)
            #expect(missing.status == .notFound)
            #expect(String(buffer: missing.body).contains("ping, node, leader, quorum, replay, apply-lag"))
            let excluded = try await client.execute(uri: "/healthz?exclude=dr-link", method: .get)
            #expect(excluded.status == .ok && String(buffer: excluded.body) == "ok")
            // application/health+json needs the token, and carries every check.
            let json: HTTPFields = [.accept: "application/health+json", .authorization: "Bearer t"]
            #expect(try await client.execute(uri: "/healthz", method: .get, headers: [.accept: "application/health+json"]).status == .unauthorized)
            let answer = try await client.execute(uri: "/healthz", method: .get, headers: json)
            #expect(answer.status == .serviceUnavailable)
            #expect(answer.headers[.contentType] == "application/health+json")
            let document = try JSONDecoder().decode(HealthJSON.self, from: Data(buffer: answer.body))
            #expect(document.status == "fail" && document.serviceId == "node1")
            let link = try #require(document.checks["dr-link"]?.first)
            #expect(link.status == "fail" && link.output == "no contact with the standby for 42 s")
            #expect(link.observedValue == 42 && link.observedUnit == "s" && link.affectedEndpoints == ["/healthz"])
            #expect(document.checks["ping"]?.first?.affectedEndpoints == ["/livez", "/readyz", "/healthz"])
            #expect(document.checks.count == 11)
            let ready = try await client.execute(uri: "/readyz", method: .get, headers: json)
            let readyDocument = try JSONDecoder().decode(HealthJSON.self, from: Data(buffer: ready.body))
            #expect(ready.status == .ok && readyDocument.status == "pass" && readyDocument.checks["dr-link"] == nil)
        }
    }

    @Test func test_registry_refusesDuplicateAndInvalidNames() throws {
        let registry = HealthRegistry()
        try registry.register(HealthCheck(name: "link-1", scope: .dependency) { .pass() })
        #expect(throws: HealthRegistryError.self) { try registry.register(HealthCheck(name: "link-1", scope: .readiness) { .pass() }) }
        for bad in ["", "Link", "a b", "a/b", String(repeating: "x", count: 65)] {
            #expect(throws: HealthRegistryError.self) { try registry.register(HealthCheck(name: bad, scope: .dependency) { .pass() }) }
        }
        #expect(registry.all.map(\.name) == ["link-1"])
    }

    @Test func test_clusterView_inInfoAdminAndMetrics() async throws {
        await loseQuorum()
        try await server().makeApplication().test(.router) { client in
            let status = try await client.execute(uri: "/v1/cluster", method: .get, headers: auth)
            let document = try JSONDecoder().decode(ClusterStatusDocument.self, from: Data(buffer: status.body))
            #expect(document.cluster?.state == "noQuorum" && document.cluster?.hasQuorum == false)
            #expect(document.members.map { $0.status ?? "-" } == ["healthy", "down", "suspect"])
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"aegis_cluster_state{state="noQuorum"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"aegis_cluster_members{status="down"} 1"#))
            #expect(metrics.contains(#"aegis_cluster_member_status{member="node2",status="down"} 1"#))
            #expect(metrics.contains("aegis_cluster_quorum 0"))
        }
    }
}

extension Data {
    init(buffer: ByteBuffer) { self.init(buffer.readableBytesView) }
}
