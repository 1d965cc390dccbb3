import AegisKV
import AegisRaft
import AegisReplication
import AegisServer
import AegisStream
import Foundation
import Hummingbird
import NIOCore

/// The DR admin endpoints and the `dr` health check.
///
/// | Endpoint | Token | |
/// |---|---|---|
/// | `GET /v1/dr` | yes | role, epoch, primary, lease, cursors, the link's lag |
/// | `GET /v1/stream/pull?after=N&token=T&lease=MS` | yes | the change stream: one frame (source leader) |
/// | `GET /v1/dr/seed?offset=O[&index=I&max=B&token=T]` | yes | the source's snapshot, to re-seed a standby (`DRSeeding.swift`) |
/// | `POST /v1/dr/promote[?force]` | yes | failover: promote this standby (waits out the lease unless `force`) |
/// | `POST /v1/dr/fence?epoch=E&primary=…&primary-admin=…` | yes | fence this cluster (it names the new primary) |
/// | `POST /v1/dr/rejoin?epoch=E&primary=…&primary-admin=…&source=ID&have=N` | yes | failback: become the new primary's standby, divergent tail to a side file (`DRRejoin.swift`) |
/// | `POST /v1/dr/demote?epoch=E&primary=…&primary-admin=…[&resume-source=ID&resume-index=N]` | yes | become a standby |
/// | `GET /primary` | no | 200 only on the writable cluster's leader (with a valid lease), else 503 |
/// | `GET /replica[?lag=N]` | no | 200 on a standby node whose lag is at most N entries, else 503 |
struct DRAdminExtension: AdminExtension {
    let coordinator: DRCoordinator
    /// `/healthz` warns when the standby's lag passes this many seconds.
    let warnLagSeconds: Double
    /// `/healthz` fails the `dr` check when the standby's leader heard nothing for this long.
    let deadLinkMillis: UInt64

    struct Failure: Encodable { var error: String }

    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?) {
        let coordinator = self.coordinator
        router.get("/v1/dr") { request, _ in
            if let denied = authorize(request) { return denied }
            guard let document = document() else { return json(Failure(error: "the node is starting"), status: .serviceUnavailable) }
            return json(document)
        }
        router.get("/v1/stream/pull") { request, _ in
            if let denied = authorize(request) { return denied }
            let query = request.uri.queryParameters
            guard let after = query["after"].flatMap({ UInt64(String($0)) }) else {
                return json(Failure(error: "after=N (a log index) is required"), status: .badRequest)
            }
            let token = query["token"].flatMap { LeaseToken(text: String($0)) }
            let lease = query["lease"].flatMap { UInt64(String($0)) }
            switch await coordinator.servePull(after: after, token: token, standbyLease: lease) {
            case .frame(let bytes):
                return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            case .notLeader(let leader):
                return json(Failure(error: "not the leader; the leader is \(leader?.rawValue ?? "unknown")"),
                            status: .misdirectedRequest)
            case .notSource(let dr):
                return json(Failure(error: "this cluster is \(dr.role) at epoch \(dr.epoch): it ships no changes"),
                            status: .conflict)
            case .gone(let first):
                return json(Failure(error: "the log before \(first) is compacted: the standby must be re-seeded"), status: .gone)
            case .failed(let why):
                return json(Failure(error: why), status: .serviceUnavailable)
            }
        }
        router.post("/v1/dr/promote") { request, _ in
            if let denied = authorize(request) { return denied }
            let force = request.uri.queryParameters["force"] != nil
            do {
                let (epoch, index, waited) = try await coordinator.promote(force: force)
                return json(DRTransitioned(epoch: epoch, index: index, waitedMillis: waited, cluster: coordinator.clusterID))
            } catch { return json(Failure(error: "\(error)"), status: .conflict) }
        }
        router.post("/v1/dr/fence") { request, _ in
            if let denied = authorize(request) { return denied }
            return await transition(request, role: .fenced)
        }
        router.post("/v1/dr/demote") { request, _ in
            if let denied = authorize(request) { return denied }
            return await transition(request, role: .standby)
        }
        router.get("/primary") { _, _ in
            guard let status = coordinator.runtime?.status else { return probe(false, "starting") }
            let dr = status.dr
            let writable = status.role == .leader && dr.role == .primary && (dr.leaseMillis == 0 || coordinator.lease.isValid)
            return probe(writable, "role \(dr.role), epoch \(dr.epoch), \(status.role == .leader ? "leader" : "not the leader")")
        }
        router.get("/replica") { request, _ in
            guard let status = coordinator.runtime?.status else { return probe(false, "starting") }
            guard status.dr.role == .standby, let lag = DRAdminExtension.lagEntries(status) else {
                return probe(false, "role \(status.dr.role): not a standby with a known lag")
            }
            if let limit = request.uri.queryParameters["lag"].flatMap({ UInt64(String($0)) }), lag > limit {
                return probe(false, "lag \(lag) entries > \(limit)")
            }
            return probe(true, "standby, lag \(lag) entries")
        }

        @Sendable func transition(_ request: Request, role: ClusterRole) async -> Response {
            let query = request.uri.queryParameters
            guard let epoch = query["epoch"].flatMap({ UInt64(String($0)) }) else {
                return json(Failure(error: "epoch=N is required"), status: .badRequest)
            }
            let text = { (name: String) -> String in query[Substring(name)].map(String.init) ?? "" }
            let transition = DRTransition(
                epoch: epoch, role: role, primary: text("primary"), primaryAdmin: text("primary-admin"),
                leaseMillis: role == .standby ? coordinator.settings.leaseMillis : 0,
                resumeSource: text("resume-source"), resumeIndex: UInt64(text("resume-index")) ?? 0)
            guard transition.primary.utf8.count <= DRTransition.maxPrimarySize,
                  transition.primaryAdmin.utf8.count <= DRTransition.maxPrimarySize,
                  transition.resumeSource.utf8.count <= StreamBatch.maxSourceSize else {
                return json(Failure(error: "an address list or source is too long"), status: .badRequest)
            }
            do {
                let index = try await coordinator.transition(transition)
                return json(DRTransitioned(epoch: epoch, index: index, waitedMillis: 0, cluster: coordinator.clusterID))
            } catch { return json(Failure(error: "\(error)"), status: .conflict) }
        }

        @Sendable func document() -> DRDocument? { DRAdminExtension.document(coordinator) }
    }

    /// This node's lag behind its primary, in entries: the source's commit when the last
    /// batch was shipped minus what that batch brought, plus what this node has yet to apply.
    static func lagEntries(_ status: NodeStatus) -> UInt64? {
        func newer(_ a: StreamCursor, _ b: StreamCursor) -> Bool {
            a.epoch < b.epoch || (a.epoch == b.epoch && a.lastIndex < b.lastIndex)
        }
        guard let cursor = status.dr.cursors.values.max(by: newer) else { return nil }
        let behind: UInt64 = cursor.sourceCommit > cursor.lastIndex ? cursor.sourceCommit - cursor.lastIndex : 0
        let unapplied: UInt64 = status.commitIndex > status.appliedIndex ? status.commitIndex - status.appliedIndex : 0
        return behind + unapplied
    }

    static func document(_ coordinator: DRCoordinator) -> DRDocument? {
        guard let status = coordinator.runtime?.status else { return nil }
        let dr = status.dr
        let link = coordinator.linkStatus
        let now = DRCoordinator.wallMillis()
        let isLeader = status.role == .leader
        return DRDocument(
            clusterID: coordinator.clusterID, nodeID: status.nodeID.rawValue, isLeader: isLeader, role: dr.role.description,
            epoch: dr.epoch, primary: dr.primary, primaryAdmin: dr.primaryAdmin, leaseMillis: dr.leaseMillis,
            leaseRemainingMillis: isLeader && dr.role == .primary ? coordinator.lease.remainingMillis : nil,
            clientAddresses: coordinator.clientAddresses, adminAddresses: coordinator.adminAddresses,
            commitIndex: status.commitIndex, appliedIndex: status.appliedIndex, lastIndex: status.lastIndex,
            cursors: dr.cursors.sorted { $0.key < $1.key }.map {
                DRDocument.Cursor(source: $0.key, lastIndex: $0.value.lastIndex, epoch: $0.value.epoch,
                                  sourceCommit: $0.value.sourceCommit, lastChangeMillis: $0.value.lastPhysical)
            },
            lagEntries: dr.role == .standby ? lagEntries(status) : nil,
            // A cluster still trying to become a standby shows its link too (its errors say why).
            link: isLeader && (dr.role == .standby || (dr.isInitial && coordinator.standbyOf != nil)) ? DRDocument.Link(
                source: link.source, applied: link.applied, sourceCommit: link.sourceCommit, lagEntries: link.lagEntries,
                lagSeconds: Double(link.lagMillis) / 1000,
                lastContactMillisAgo: link.lastContactMillis.map { now > $0 ? now - $0 : 0 },
                frames: link.frames, changes: link.changes, bytes: link.bytes, errors: link.errors,
                lastError: link.lastError, seeds: link.seeds, lastSeedIndex: link.lastSeedIndex) : nil,
            pendingSeed: dr.pendingSeed.isEmpty ? nil : dr.pendingSeed)
    }

    /// The `dr` check: a dependency (a dead link fails `/healthz` and `/healthz/dr`, never
    /// liveness or readiness).
    func healthChecks() -> [HealthCheck] {
        [HealthCheck(name: "dr", scope: .dependency, componentType: "component") { [self] in drHealth() }]
    }

    func drHealth() -> HealthCheckResult {
        guard let status = coordinator.runtime?.status else { return .pass("not running yet") }
        let dr = status.dr
        if dr.isInitial { return .pass("not part of a DR pair") }
        switch dr.role {
        case .standby where status.role == .leader:
            let link = coordinator.linkStatus
            let now = DRCoordinator.wallMillis()
            guard let contact = link.lastContactMillis, now <= contact + deadLinkMillis else {
                return .fail("no batch from the primary for over \(deadLinkMillis) ms"
                             + (link.lastError.map { " (last error: \($0))" } ?? ""))
            }
            let lag = Double(link.lagMillis) / 1000
            let result: HealthCheckResult = lag > warnLagSeconds
                ? .warn("the standby is \(link.lagEntries) entries (\(lag) s) behind its primary")
                : .pass("\(link.lagEntries) entries (\(lag) s) behind the primary")
            return result.observed(lag, "s")
        case .primary where status.role == .leader && dr.leaseMillis > 0 && !coordinator.lease.isValid:
            return .warn("write lease expired: no standby acknowledged within \(dr.leaseMillis) ms; writes are refused")
        case .fenced:
            return .warn("fenced at epoch \(dr.epoch); the primary is \(dr.primary)")
        default:
            return .pass()
        }
    }
}

private func probe(_ ok: Bool, _ detail: String) -> Response {
    var buffer = ByteBuffer(string: detail)
    buffer.writeString("\n")
    return Response(status: ok ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: buffer))
}

private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    AdminResponses.json(value, status: status)
}
