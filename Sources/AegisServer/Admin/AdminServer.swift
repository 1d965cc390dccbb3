import AegisKV
import AegisRaft
import Foundation
public import Hummingbird
import HummingbirdCore
public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOSSL
public import Prometheus
public import ServiceLifecycle

/// The HTTP admin server (Hummingbird): health in the Kubernetes conventions,
/// Prometheus metrics, cluster status and membership, and a JSON key-value API.
///
/// | Endpoint | |
/// |---|---|
/// | `GET /livez`, `/readyz`, `/healthz` | `ok`, or `[+]check ok` lines with `?verbose`; 503 Service Unavailable on failure (the Kubernetes convention); `?exclude=<check>`; `application/health+json` when the `Accept` header asks for it * |
/// | `GET /livez/{check}`, `/readyz/{check}`, `/healthz/{check}` | one check of that endpoint; 404 for a check it does not run |
/// | `GET /metrics` | Prometheus text format |
/// | `GET /v1/cluster` | `ClusterStatusDocument` |
/// | `POST /v1/cluster/members` | add: `AddMemberRequest` (learner by default) * |
/// | `POST /v1/cluster/members/{id}/promote` | learner → voter * |
/// | `DELETE /v1/cluster/members/{id}` | remove * |
/// | `POST /v1/cluster/transfer-leader` | optional `TransferLeaderRequest` * |
/// | `POST /v1/node/shutdown` | stops this node gracefully (a leader hands leadership over first); 202 * |
/// | `GET /v1/kv/{key}` | `KeyValueDocument`, 404 if absent; `?stale=true` reads local state * |
/// | `PUT /v1/kv/{key}` | the body is the value (raw bytes), or `{"value": "…"}` with `Content-Type: application/json`; `?ifVersion=N` writes only at version N (0: only if absent), else 412 * |
/// | `DELETE /v1/kv/{key}` | `{"deleted": true/false, …}` * |
///
/// \* requires `Authorization: Bearer <token>` (compared in constant time), on every
/// address including loopback: 401 without it or with a wrong one, 403 when the node
/// has no admin token configured (the answer says how to set one). Refusals are logged
/// at a bounded rate. `GET /v1/cluster` and the health endpoints with `?verbose` need
/// the token too, and so does `application/health+json` (it carries every detail); only
/// `/livez`, `/readyz`, `/healthz` (and their per-check paths) and `/metrics` are open.
///
/// Health checks live in one `HealthRegistry`: the node's own (`registerNodeChecks`),
/// each extension's `healthChecks()`, and whatever a caller registers in `health`.
/// Keys in paths are percent-decoded and may contain `/`.
///
/// With a TLS context the server speaks HTTPS only; the context is asked for on every
/// connection, so certificates re-read on SIGHUP apply to new connections.
/// Errors are JSON `AdminErrorDocument`s: 503 without a leader (with the leader hint
/// when known), 504 on timeouts, 409 for refused membership changes, 400 for bad input.
public struct AdminServer: Service {
    private let configuration: AdminServerConfiguration
    private let backend: any KVBackend
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let tls: (@Sendable () throws -> NIOSSLContext)?
    private let certificates: @Sendable () -> [ServedCertificate]
    private let onListening: @Sendable (SocketAddress) async -> Void
    private let extensions: [any AdminExtension]
    private let onShutdownRequest: (@Sendable () async -> Void)?
    /// The node's health checks; register more at any time.
    public let health: HealthRegistry

    /// Creates a server.
    ///
    /// - Parameters:
    ///   - configuration: where to listen, the admin token, readiness threshold.
    ///   - backend: the node.
    ///   - registry: the Prometheus registry `/metrics` emits; bootstrap swift-metrics
    ///     with a `PrometheusMetricsFactory` on the same registry so that every metric
    ///     of the process appears.
    ///   - logger: where the server logs.
    ///   - tls: with HTTPS, the server context for each new connection.
    ///   - certificates: the certificates the node uses and their expiry, for the
    ///     `aegis_tls_certificate_expiry_seconds` gauge and the health check.
    ///   - onListening: called with the bound address once the server listens.
    ///   - extensions: more endpoints and health checks.
    ///   - health: the registry to use (the node's checks are added to it); a new one by default.
    ///   - freeSpace: free and total bytes of the file system holding a path (tests).
    ///   - onShutdownRequest: what `POST /v1/node/shutdown` does (`nil`: the endpoint answers 501).
    public init(configuration: AdminServerConfiguration, backend: any KVBackend, registry: PrometheusCollectorRegistry,
                logger: Logger, tls: (@Sendable () throws -> NIOSSLContext)? = nil,
                certificates: @escaping @Sendable () -> [ServedCertificate] = { [] },
                onListening: @escaping @Sendable (SocketAddress) async -> Void = { _ in },
                extensions: [any AdminExtension] = [], health: HealthRegistry = HealthRegistry(),
                freeSpace: (@Sendable (String) -> (free: UInt64, total: UInt64)?)? = nil,
                onShutdownRequest: (@Sendable () async -> Void)? = nil) {
        self.extensions = extensions
        self.health = health
        self.onShutdownRequest = onShutdownRequest
        health.registerNodeChecks(backend: backend, configuration: configuration, certificates: certificates,
                                  freeSpace: freeSpace ?? HealthRegistry.fileSystemSpace)
        for e in extensions {
            for check in e.healthChecks() {
                do { try health.register(check) } catch {
                    logger.error("a health check was not registered", metadata: ["error": "\(error)"])
                }
            }
        }
        self.configuration = configuration
        self.backend = backend
        self.registry = registry
        self.logger = logger
        self.tls = tls
        self.certificates = certificates
        self.onListening = onListening
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async throws {
        let listening = NIOLockedValueBox(false)
        do {
            try await makeApplication(listening: listening).run()
        } catch where !listening.withLockedValue({ $0 }) {
            throw ListenError(what: "the admin API", host: configuration.host, port: configuration.port, underlying: "\(error)")
        }
    }

    /// The Hummingbird application (tests send requests straight to its router).
    public func makeApplication() -> some ApplicationProtocol {
        makeApplication(listening: NIOLockedValueBox(false))
    }

    private func makeApplication(listening: NIOLockedValueBox<Bool>) -> some ApplicationProtocol {
        let onListening = self.onListening
        return Application(
            router: makeRouter(),
            server: tls.map { HTTPServerBuilder.reloadingTLS($0) } ?? .http1(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "aegis"),
            onServerRunning: { channel in
                listening.withLockedValue { $0 = true }
                if let address = channel.localAddress { await onListening(address) }
            },
            logger: logger)
    }

    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MetricsMiddleware())
        let handlers = AdminHandlers(configuration: configuration, backend: backend, refusals: RateLimitedLog(logger: logger),
                                     health: health)
        for e in extensions { e.register(on: router, authorize: { handlers.authorize($0) }) }
        for endpoint in HealthEndpoint.allCases {
            router.get("/\(endpoint.rawValue)") { request, _ in await handlers.health(endpoint, request) }
            router.get("/\(endpoint.rawValue)/{check}") { request, context in
                await handlers.health(endpoint, request, only: context.parameters.get("check") ?? "")
            }
        }
        let onShutdownRequest = self.onShutdownRequest
        router.post("/v1/node/shutdown") { request, _ in await handlers.shutdown(request, onShutdownRequest) }
        let registry = self.registry
        let certificates = self.certificates
        let backend = self.backend
        router.get("/metrics") { _, _ in
            ClusterMetrics.update(registry, from: await backend.status())
            for certificate in certificates() {
                registry.makeGauge(descriptor: MetricNameDescriptor(
                    namespace: "aegis", subsystem: "tls", metricName: "certificate_expiry", unitName: "seconds",
                    helpText: "Seconds until the certificate expires (negative once expired)."),
                                   labels: [("certificate", certificate.name)])
                    .set(certificate.notValidAfter.timeIntervalSinceNow)
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/v1/cluster") { request, _ in await handlers.clusterStatus(request) }
        router.post("/v1/cluster/members") { request, _ in await handlers.addMember(request) }
        router.post("/v1/cluster/members/{id}/promote") { request, context in
            await handlers.changeMember(request, id: context.parameters.get("id") ?? "", promote: true)
        }
        router.delete("/v1/cluster/members/{id}") { request, context in
            await handlers.changeMember(request, id: context.parameters.get("id") ?? "", promote: false)
        }
        router.post("/v1/cluster/transfer-leader") { request, _ in await handlers.transferLeader(request) }
        router.get("/v1/kv/**") { request, _ in await handlers.getKey(request) }
        router.put("/v1/kv/**") { request, _ in await handlers.putKey(request) }
        router.delete("/v1/kv/**") { request, _ in await handlers.deleteKey(request) }
        return router
    }
}

/// The admin endpoints' logic, apart from routing.
struct AdminHandlers: Sendable {
    let configuration: AdminServerConfiguration
    let backend: any KVBackend
    /// Requests refused for a missing or wrong token, logged at a bounded rate.
    let refusals: RateLimitedLog
    /// The checks `/livez`, `/readyz` and `/healthz` run.
    let health: HealthRegistry

    // MARK: Health

    /// Kubernetes-style health from the registry: `ok`, or with `?verbose` (and always
    /// on failure) one line per check; `application/health+json` when `Accept` asks for
    /// it. Warnings do not fail an endpoint. `?verbose` and health+json need the admin
    /// token. `only` runs one check (the per-check paths): 404 if the endpoint has none
    /// of that name.
    func health(_ endpoint: HealthEndpoint, _ request: Request, only: String? = nil) async -> Response {
        let verbose = request.uri.queryParameters["verbose"] != nil
        let wantsJSON = request.headers[.accept].map { $0.lowercased().contains("application/health+json") } ?? false
        if verbose || wantsJSON, let denied = authorize(request) { return denied }
        let excluded = Set(request.uri.queryParameters.getAll("exclude").map { String($0) })
        guard let report = await health.evaluate(endpoint, excluding: excluded, only: only) else {
            return error(.notFound, "/\(endpoint.rawValue) has no check named '\(only?.prefix(64) ?? "")'; its checks: "
                + health.checks(for: endpoint).map(\.name).joined(separator: ", "))
        }
        let status: HTTPResponse.Status = report.passed ? .ok : .serviceUnavailable
        if wantsJSON {
            let nodeID = await backend.status().nodeID.rawValue
            var buffer = ByteBuffer(bytes: report.healthJSON(serviceID: nodeID))
            buffer.writeString("\n")
            return Response(status: status, headers: [.contentType: "application/health+json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: buffer))
        }
        return Response(status: status, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: report.text(verbose: verbose))))
    }

    /// `POST /v1/node/shutdown`: starts a graceful stop and answers at once.
    func shutdown(_ request: Request, _ action: (@Sendable () async -> Void)?) async -> Response {
        if let denied = authorize(request) { return denied }
        guard let action else { return error(.notImplemented, "this server cannot be stopped through the admin API") }
        await action()
        return json(AdminErrorDocument(error: "stopping: a leader hands leadership over first"), status: .accepted)
    }

    // MARK: Cluster

    func clusterStatus(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        return json(ClusterStatusDocument(await backend.status()))
    }

    func addMember(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        let member: AddMemberRequest
        switch await decodeBody(request, as: AddMemberRequest.self) {
        case .success(let decoded?): member = decoded
        case .success(nil): return error(.badRequest, "the body must be JSON: {\"id\": …, \"peerAddress\": …, \"clientAddress\": …, \"learner\": true}")
        case .failure(let failure): return failure.response
        }
        guard !member.id.isEmpty else { return error(.badRequest, "the member id must not be empty") }
        return await run { () async throws(BackendError) in
            try await backend.addMember(NodeID(member.id), peerAddress: member.peerAddress,
                                        clientAddress: member.clientAddress, asLearner: member.learner ?? true)
        }
    }

    func changeMember(_ request: Request, id: String, promote: Bool) async -> Response {
        if let denied = authorize(request) { return denied }
        guard !id.isEmpty else { return error(.badRequest, "the member id is missing from the path") }
        return await run { () async throws(BackendError) in
            if promote { try await backend.promoteMember(NodeID(id)) } else { try await backend.removeMember(NodeID(id)) }
        }
    }

    func transferLeader(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        switch await decodeBody(request, as: TransferLeaderRequest.self) {
        case .success(let body):
            return await run { () async throws(BackendError) in
                try await backend.transferLeadership(to: body?.target.map { NodeID($0) })
            }
        case .failure(let failure):
            return failure.response
        }
    }

    /// Runs an administrative change and answers with the cluster status after it.
    private func run(_ change: () async throws(BackendError) -> Void) async -> Response {
        do {
            try await change()
            return json(ClusterStatusDocument(await backend.status()))
        } catch {
            return self.error(error)
        }
    }

    // MARK: Keys

    func getKey(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        guard let key = key(from: request) else { return error(.badRequest, "the key is missing or not percent-encoded correctly: use /v1/kv/<key>") }
        let stale = request.uri.queryParameters["stale"].map { $0 == "true" || $0 == "1" } ?? false
        do {
            guard let record = try await backend.read([key], stale: stale).first ?? nil else {
                return json(AdminErrorDocument(error: "key not found: \(key)"), status: .notFound)
            }
            return json(KeyValueDocument(key: key, value: record.value, version: record.version, revision: record.modRevision))
        } catch {
            return self.error(error)
        }
    }

    func putKey(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        guard let key = key(from: request) else { return error(.badRequest, "the key is missing or not percent-encoded correctly: use /v1/kv/<key>") }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodySize)
        } catch {
            return self.error(.contentTooLarge, "the value is larger than the limit of \(configuration.maxBodySize) bytes")
        }
        var value = Array(body.readableBytesView)
        if request.headers[.contentType]?.hasPrefix("application/json") == true {
            guard let decoded = try? JSONDecoder().decode(PutValueRequest.self, from: Data(value)) else {
                return error(.badRequest, "with Content-Type application/json the body must be {\"value\": \"…\"}; send other content types for raw bytes")
            }
            value = Array(decoded.value.utf8)
        }
        var command = Command.set(key, value)
        if let raw = request.uri.queryParameters["ifVersion"] {
            guard let version = UInt64(raw) else { return error(.badRequest, "ifVersion must be a non-negative integer (0: only if absent)") }
            command = .compareAndSwap(key, expected: .version(version), new: value)
        }
        return await execute(command, key: key)
    }

    func deleteKey(_ request: Request) async -> Response {
        if let denied = authorize(request) { return denied }
        guard let key = key(from: request) else { return error(.badRequest, "the key is missing or not percent-encoded correctly: use /v1/kv/<key>") }
        return await execute(.delete(key), key: key)
    }

    private func execute(_ command: Command, key: Key) async -> Response {
        do {
            let result = try await backend.execute(command)
            if let failure = result.error {
                if case .compareFailed(let current) = failure {
                    return json(AdminErrorDocument(error: "\(failure); the key's current version is \(current)"), status: .preconditionFailed)
                }
                return error(.badRequest, failure.description)
            }
            if case .delete = command {
                return json(KeyValueDocument(key: key, value: nil, version: 0, revision: result.revision,
                                             deleted: result.previousValue != nil))
            }
            return json(KeyValueDocument(key: key, value: nil, version: result.version, revision: result.revision))
        } catch {
            return self.error(error)
        }
    }

    /// The percent-decoded key after `/v1/kv/`.
    private func key(from request: Request) -> Key? {
        let path = request.uri.path
        let prefix = "/v1/kv/"
        guard path.hasPrefix(prefix) else { return nil }
        guard let decoded = String(path.dropFirst(prefix.count)).removingPercentEncoding, !decoded.isEmpty else { return nil }
        return Key(decoded)
    }

    // MARK: Helpers

    /// `nil` when the request carries the admin token; a 401 response (403 when no
    /// token is configured) otherwise, logged at a bounded rate.
    ///
    /// The comparison is of SHA-256 digests in constant time, so neither the token's
    /// length nor the position of the first wrong byte shows in the time it takes.
    func authorize(_ request: Request) -> Response? {
        let presented = request.headers[.authorization] ?? ""
        guard let token = configuration.adminToken else {
            refusals.notice("admin request refused: no admin token configured", metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path.prefix(128))"])
            return json(AdminErrorDocument(error: "this endpoint requires an admin token, and this node has none: start it with --admin-token <token> or --admin-token-file <path> (or AEGIS_ADMIN_TOKEN), then send Authorization: Bearer <token>"),
                        status: .forbidden)
        }
        if constantTimeEqual(sha256(presented), sha256("Bearer " + token)) { return nil }
        refusals.notice("admin request refused: \(presented.isEmpty ? "no" : "wrong") token", metadata: [
            "method": "\(request.method)", "path": "\(request.uri.path.prefix(128))"])
        var response = json(AdminErrorDocument(error: presented.isEmpty
            ? "this endpoint requires the admin token: send Authorization: Bearer <token>"
            : "the admin token is wrong"), status: .unauthorized)
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    /// The decoded JSON body; `nil` for an empty body; a 400/413 response if malformed.
    private func decodeBody<T: Decodable>(_ request: Request, as type: T.Type) async -> Result<T?, ResponseFailure> {
        var request = request
        guard let body = try? await request.collectBody(upTo: 64 << 10) else {
            return .failure(ResponseFailure(error(.contentTooLarge, "the body is larger than 64 KiB")))
        }
        guard body.readableBytes > 0 else { return .success(nil) }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(body.readableBytesView)))
        } catch {
            return .failure(ResponseFailure(self.error(.badRequest, "the body is not valid JSON for this endpoint: \(error)")))
        }
    }

    private func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(AdminErrorDocument(error: message), status: status)
    }

    private func error(_ error: BackendError) -> Response {
        switch error {
        case .notLeader(let leader), .noLeader(let leader):
            var response = json(AdminErrorDocument(error: error.description, leader: leader?.id.rawValue,
                                                   leaderClientAddress: leader?.clientAddress), status: .serviceUnavailable)
            response.headers[.retryAfter] = "1"
            return response
        case .timeout: return self.error(.gatewayTimeout, error.description)
        case .unavailable: return self.error(.serviceUnavailable, error.description)
        case .overloaded, .notCommitted:
            var response = self.error(.serviceUnavailable, error.description)
            response.headers[.retryAfter] = "1"
            return response
        case .command: return self.error(.badRequest, error.description)
        case .rejected: return self.error(.conflict, error.description)
        }
    }

    private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var buffer = ByteBuffer(bytes: data)
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: buffer))
    }
}

/// A response to send instead of continuing (a `Result` failure needs an `Error`).
struct ResponseFailure: Error {
    var response: Response
    init(_ response: Response) { self.response = response }
}
