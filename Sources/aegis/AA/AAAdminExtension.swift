import AegisKV
import AegisRaft
import AegisReplication
import AegisServer
import Foundation
import Hummingbird
import NIOCore

/// The active-active admin endpoints and the `active-active` health check.
///
/// | Endpoint | Token | |
/// |---|---|---|
/// | `GET /v1/aa` | yes | enabled, metadata size, peers, per link: cursor, lag (entries, seconds), last contact, errors |
/// | `GET /v1/aa/pull?after=N&peer=ID` | yes | this cluster's batch for a peer: one frame (leader only) |
/// | `GET /v1/aa/catchup?peer=ID[&index=N&after=KEY]` | yes | a page of this cluster's whole state for a peer catching up (AACatchUp.swift) |
/// | `GET`/`PUT /v1/aa/topology`, `PUT`/`DELETE /v1/aa/peers/{id}` | yes | the cluster's topology and its changes (AATopology.swift) |
/// | `GET`/`PUT /v1/aa/strategies`, `GET /v1/aa/conflicts`, `POST /v1/aa/conflicts/{id}/resolve`, `GET /v1/aa/audit` | yes | conflict resolution (AAConflictsAdmin.swift) |
struct AAAdminExtension: AdminExtension {
    let coordinator: AACoordinator
    /// `/healthz` warns when a link has been behind for longer than this.
    let warnLagSeconds: Double
    /// `/healthz` fails the check when the leader heard nothing from a peer for this long.
    let deadLinkMillis: UInt64

    struct Failure: Encodable { var error: String }

    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?) {
        let coordinator = self.coordinator
        AAConflictsAdmin.register(on: router, coordinator: coordinator, authorize: authorize)
        AATopologyAdmin.register(on: router, coordinator: coordinator, authorize: authorize)
        router.get("/v1/aa") { request, _ in
            if let denied = authorize(request) { return denied }
            guard let document = AAAdminExtension.document(coordinator) else {
                return AdminResponses.json(Failure(error: "the node is starting"), status: .serviceUnavailable)
            }
            return AdminResponses.json(document)
        }
        router.get("/v1/aa/pull") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            guard let after = query["after"].flatMap({ UInt64(String($0)) }) else {
                return AdminResponses.json(Failure(error: "after=N (a log index) is required"), status: .badRequest)
            }
            let peer = query["peer"].map { String($0).removingPercentEncoding ?? String($0) } ?? ""
            switch await coordinator.servePull(after: after, peer: peer) {
            case .frame(let bytes):
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            case .notLeader(let leader):
                return AdminResponses.json(Failure(error: "not the leader; the leader is \(leader?.rawValue ?? "unknown")"),
                                           status: .misdirectedRequest)
            case .disabled:
                return AdminResponses.json(Failure(error: "active-active is not enabled on this cluster"), status: .conflict)
            case .gone(let first):
                return AdminResponses.json(Failure(error: "the log before \(first) is compacted: the peer must be re-seeded"),
                                           status: .gone)
            case .failed(let why):
                return AdminResponses.json(Failure(error: why), status: .serviceUnavailable)
            }
        }
        router.get("/v1/aa/catchup") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            let peer = query["peer"].map { String($0).removingPercentEncoding ?? String($0) } ?? ""
            var index: UInt64?
            var after: Key?
            if let text = query["index"] {
                guard let value = UInt64(String(text)), let keyText = query["after"],
                      let key = AAKeyText.decode(String(keyText)) else {
                    return AdminResponses.json(Failure(error: "index=N needs after=KEY (base64url), and both must be valid"),
                                               status: .badRequest)
                }
                index = value
                after = key
            }
            switch await coordinator.servePage(index: index, after: after, peer: peer) {
            case .page(let bytes, let after, let complete):
                var headers: HTTPFields = [.contentType: "application/octet-stream"]
                if let completeName = HTTPFields.Element.Name("Aegis-AA-Complete") { headers[completeName] = complete ? "1" : "0" }
                if let after, let afterName = HTTPFields.Element.Name("Aegis-AA-After") { headers[afterName] = AAKeyText.encode(after) }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            case .notLeader(let leader):
                return AdminResponses.json(Failure(error: "not the leader; the leader is \(leader?.rawValue ?? "unknown")"),
                                           status: .misdirectedRequest)
            case .disabled:
                return AdminResponses.json(Failure(error: "active-active is not enabled on this cluster"), status: .conflict)
            case .failed(let why):
                return AdminResponses.json(Failure(error: why), status: .serviceUnavailable)
            }
        }
    }

    static func document(_ coordinator: AACoordinator) -> AADocument? {
        guard let status = coordinator.runtime?.status else { return nil }
        let isLeader = status.role == .leader
        let links = coordinator.linkStatuses
        let now = AACoordinator.wallMillis()
        return AADocument(
            clusterID: coordinator.clusterID, nodeID: status.nodeID.rawValue, isLeader: isLeader,
            enabled: status.activeActive.enabled, maxClockSkewMillis: status.activeActive.maxClockSkewMillis,
            metadata: status.activeActiveMetadata,
            links: coordinator.peers.map { peer in
                let cursor = status.activeActiveCursors[peer.id]
                let link = isLeader ? links[peer.id] : nil
                return AADocument.Link(
                    source: peer.id, addresses: peer.addresses.joined(separator: ","),
                    cursor: cursor?.lastIndex ?? 0, sourceCommit: max(cursor?.sourceCommit ?? 0, link?.sourceCommit ?? 0),
                    lagEntries: link?.lagEntries, lagSeconds: link.map { Double($0.lagMillis) / 1000 },
                    lastContactMillisAgo: link?.lastContactMillis.map { now > $0 ? now - $0 : 0 },
                    frames: link?.frames, states: link?.states, bytes: link?.bytes, errors: link?.errors,
                    lastError: link?.lastError, catchingUp: status.activeActiveCatchUps[peer.id] != nil || link?.catchingUp == true,
                    catchUpIndex: status.activeActiveCatchUps[peer.id]?.snapshotIndex, catchUpPages: link?.catchUpPages)
            })
    }

    /// The `active-active` check: a dependency (a dead link fails `/healthz`, never
    /// liveness or readiness). Only the leader pulls, so followers pass.
    func healthChecks() -> [HealthCheck] {
        [HealthCheck(name: "active-active", scope: .dependency, componentType: "component") { [self] in health() }]
    }

    func health() -> HealthCheckResult {
        guard let status = coordinator.runtime?.status else { return .pass("not running yet") }
        guard status.activeActive.enabled else { return .pass("active-active not enabled yet") }
        guard status.role == .leader else { return .pass("only the leader pulls") }
        let links = coordinator.linkStatuses
        let now = AACoordinator.wallMillis()
        var worst = 0.0
        var warnings: [String] = []
        for peer in coordinator.peers {
            let link = links[peer.id] ?? AALinkStatus()
            guard let contact = link.lastContactMillis, now <= contact + deadLinkMillis else {
                return .fail("no batch from \(peer.id) for over \(deadLinkMillis) ms"
                             + (link.lastError.map { " (last error: \($0))" } ?? ""))
            }
            let lag = Double(link.lagMillis) / 1000
            worst = max(worst, lag)
            if lag > warnLagSeconds { warnings.append("\(peer.id) is \(link.lagEntries) entries (\(lag) s) behind") }
        }
        let result: HealthCheckResult = warnings.isEmpty ? .pass("\(coordinator.peers.count) links within \(warnLagSeconds) s")
            : .warn(warnings.joined(separator: "; "))
        return result.observed(worst, "s")
    }
}

/// `GET /v1/aa`: a node's view of its active-active group.
struct AADocument: Codable, Sendable {
    struct Link: Codable, Sendable {
        var source: String
        var addresses: String
        /// The peer's last log index merged here (replicated: every node knows it).
        var cursor: UInt64
        var sourceCommit: UInt64
        /// The rest is the pulling leader's view (`nil` on followers).
        var lagEntries: UInt64?
        var lagSeconds: Double?
        var lastContactMillisAgo: UInt64?
        var frames: UInt64?
        var states: UInt64?
        var bytes: UInt64?
        var errors: UInt64?
        var lastError: String?
        /// `true` while the link catches up from the source's whole state.
        var catchingUp: Bool?
        /// The source index the catch-up in progress stands for (replicated).
        var catchUpIndex: UInt64?
        /// Catch-up pages merged by this leader.
        var catchUpPages: UInt64?
    }

    var clusterID: String
    var nodeID: String
    var isLeader: Bool
    var enabled: Bool
    var maxClockSkewMillis: UInt64
    /// The CRDT metadata's size: keys, empty parts waiting for stability, stable stamp.
    var metadata: ActiveActiveMetadataSummary?
    var links: [Link]
}
