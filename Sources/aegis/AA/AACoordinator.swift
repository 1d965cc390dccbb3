import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The active-active side of one node (`aegis serve --active-active --aa-peer …`):
/// enables active-active in the cluster's state machine, serves this cluster's batches
/// to its peers (`GET /v1/aa/pull`, on the leader) and pulls each peer's, proposing
/// them through this cluster's log with the link's cursor. Every node runs one; only
/// the leader acts, so the links move with leadership.
///
/// Loop prevention (mesh): a batch carries only the keys this cluster's own clients
/// wrote (merged peer batches are not forwarded), and every cluster pulls from every
/// peer, so each change reaches each cluster once, from its origin. In a star or tree
/// (`--aa-topology`, command 77) each cluster pulls from its neighbours only, and a
/// batch also carries what the source merged from its other neighbours (never back to
/// the link it came from; ActiveActiveTopology.swift). The links follow the cluster's
/// replicated topology: `aegis aa add|remove` starts and stops them at run time.
final class AACoordinator: Service, @unchecked Sendable {
    /// A peer cluster: its ID and admin addresses.
    struct Peer: Sendable {
        var id: String
        var addresses: [String]
    }

    let clusterID: String
    /// The peers of `--aa-peer` or of the `--aa-topology` file (used until the cluster
    /// has a replicated topology).
    let staticPeers: [Peer]
    /// The topology of `--aa-topology`, recorded through the log when the cluster has none.
    let topologySeed: ActiveActiveTopology?
    let maxClockSkewMillis: UInt64
    let settings: StreamSettings
    let client: DRClient
    let logger: Logger
    /// The most key states in one catch-up page (AACatchUp.swift; default 5,000).
    let catchUpPageStates: Int
    /// The conflict strategies `--aa-strategy` asks for (AAStrategySeed.swift).
    let strategySeed: AAStrategySeed?

    let lock = NSLock()
    private var runtimeBox: NodeRuntime?
    var links: [String: AALinkStatus] = [:]
    /// The lowest cursor each peer asked this node for: the log is not compacted past it.
    var held: [String: LogIndex] = [:]
    private var stopping = false
    /// The peers whose link loop runs.
    private var running: Set<String> = []
    /// Per peer, the progress vectors of the last batch this node logged (see `merge`).
    private var progressLogged: [String: AAProgressSeen] = [:]

    init(clusterID: String, peers: [Peer], maxClockSkewMillis: UInt64, settings: StreamSettings, client: DRClient,
         logger: Logger, catchUpPageStates: Int = 5_000, strategies: ActiveActiveConflictSettings? = nil,
         topology: ActiveActiveTopology? = nil) {
        self.clusterID = clusterID
        self.strategySeed = strategies.map(AAStrategySeed.init)
        self.catchUpPageStates = catchUpPageStates
        self.topologySeed = topology
        self.staticPeers = topology.map { Self.peers(of: clusterID, in: $0) } ?? peers
        self.maxClockSkewMillis = maxClockSkewMillis
        self.settings = settings
        self.client = client
        self.logger = logger
        for peer in staticPeers { links[peer.id] = AALinkStatus() }
    }

    /// The peers this cluster pulls from: its neighbours in the replicated topology,
    /// or the static peers while it has none.
    var peers: [Peer] {
        guard let topology = runtime?.status.activeActiveTopology else { return staticPeers }
        return Self.peers(of: clusterID, in: topology)
    }

    /// `cluster`'s neighbours in `topology`, with their addresses.
    static func peers(of cluster: String, in topology: ActiveActiveTopology) -> [Peer] {
        topology.neighbours(of: cluster).map { Peer(id: $0, addresses: topology.clusters[$0] ?? []) }
    }

    func attach(_ runtime: NodeRuntime) { lock.withLock { runtimeBox = runtime } }

    var runtime: NodeRuntime? { lock.withLock { runtimeBox } }

    /// Each peer's link as this node's loop sees it (the leader's are current).
    var linkStatuses: [String: AALinkStatus] { lock.withLock { links } }

    /// The compaction floor: what the peers still have to pull from this node.
    var compactionFloor: LogIndex? { lock.withLock { held.values.min() } }

    // MARK: Serving (source side)

    enum PullAnswer {
        case frame([UInt8])
        case notLeader(NodeID?)
        case disabled
        case gone(firstIndex: LogIndex)
        case failed(String)
    }

    /// Serves one pull of peer `peer`: this cluster's batch after `after`, waiting up to
    /// `pollWaitMillis` when nothing new is committed.
    func servePull(after: UInt64, peer: String) async -> PullAnswer {
        guard let runtime else { return .failed("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else { return .notLeader(status.leader) }
        guard status.activeActive.enabled else { return .disabled }
        if peers.contains(where: { $0.id == peer }) { lock.withLock { held[peer] = after } }
        let deadline = ContinuousClock.now + .milliseconds(Int64(clamping: settings.pollWaitMillis))
        var read: ActiveActiveRead
        do {
            while true {
                read = try await runtime.activeActiveBatch(after: after, source: clusterID, sourceTime: Self.wallMillis(),
                                                           maxCount: settings.maxBatchEntries, maxBytes: settings.maxBatchBytes,
                                                           peer: peer.isEmpty ? nil : peer)
                if after < read.commitIndex && after + 1 < read.firstIndex { return .gone(firstIndex: read.firstIndex) }
                // Entries that carry nothing for peers (their merges, reads, no-ops) are
                // answered at the deadline, not at once: an idle link then polls, and
                // two clusters' cursor entries do not feed each other.
                if !read.batch.states.isEmpty || ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .milliseconds(5))
            }
        } catch {
            return .failed("\(error)")
        }
        let frame = ActiveActiveFrame(batch: read.batch, sourceTime: Self.wallMillis())
        do { return .frame(try frame.encoded(compression: settings.compression)) } catch { return .failed("\(error)") }
    }

    // MARK: The loops

    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.loop { await self.enableStep() } }
                if let seed = self.strategySeed { group.addTask { await self.loop { await seed.step(self) } } }
                if self.topologySeed != nil { group.addTask { await self.loop { await self.topologyStep() } } }
                // The links follow the peer set: a loop per peer, ended when it leaves.
                while !Task.isCancelled && !self.lock.withLock({ self.stopping }) {
                    for peer in self.peers {
                        let start = self.lock.withLock { self.running.insert(peer.id).inserted }
                        guard start else { continue }
                        self.logger.notice("active-active link started", metadata: ["peer": "\(peer.id)"])
                        group.addTask { await self.linkLoop(peer.id) }
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        } onGracefulShutdown: {
            self.lock.withLock { self.stopping = true }
        }
    }

    /// Pulls from `id` while it is a peer; forgets the link's state when it leaves.
    private func linkLoop(_ id: String) async {
        while !Task.isCancelled && !lock.withLock({ stopping }) {
            guard let peer = peers.first(where: { $0.id == id }) else { break }
            let pause = await pullStep(peer)
            try? await Task.sleep(for: pause)
        }
        lock.withLock {
            running.remove(id)
            links[id] = nil
            held[id] = nil
            progressLogged[id] = nil
        }
        logger.notice("active-active link stopped", metadata: ["peer": "\(id)"])
    }

    /// On the leader: records the `--aa-topology` file when the cluster has no topology
    /// yet (afterwards `aegis aa add|remove` and `PUT /v1/aa/topology` change it).
    private func topologyStep() async -> Duration {
        guard let seed = topologySeed else { return .seconds(3600) }
        guard let runtime, runtime.status.role == .leader, runtime.status.activeActive.enabled else {
            return .milliseconds(200)
        }
        if let current = runtime.status.activeActiveTopology {
            if current != seed { logger.notice("the replicated active-active topology differs from --aa-topology; keeping it") }
            return .seconds(3600)
        }
        do {
            let result = try await runtime.execute(.activeActiveTopology(.seed(seed)))
            if let error = result.error {
                logger.warning("cannot record the --aa-topology file: \(error)")
                return .seconds(5)
            }
            logger.notice("active-active topology recorded", metadata: ["kind": "\(seed.kind.name)"])
        } catch {
            logger.debug("aa: recording the topology: \(error)")
        }
        return .milliseconds(200)
    }

    private func loop(_ step: @Sendable () async -> Duration) async {
        while !Task.isCancelled && !lock.withLock({ stopping }) {
            let pause = await step()
            try? await Task.sleep(for: pause)
        }
    }

    /// On the leader: records the active-active setting through the log once.
    private func enableStep() async -> Duration {
        guard let runtime, runtime.status.role == .leader else { return .milliseconds(200) }
        let current = runtime.status.activeActive
        guard !current.enabled || current.maxClockSkewMillis != maxClockSkewMillis else { return .seconds(1) }
        do {
            let result = try await runtime.execute(.setActiveActive(ActiveActiveSettings(
                enabled: true, maxClockSkewMillis: maxClockSkewMillis)))
            if let error = result.error { logger.warning("cannot enable active-active: \(error)") }
            logger.notice("active-active enabled", metadata: ["cluster": "\(clusterID)", "peers": "\(peers.map(\.id))"])
        } catch {
            logger.debug("aa: enabling: \(error)")
        }
        return .milliseconds(200)
    }

    /// On the leader of an enabled cluster: pulls one frame from `peer` and merges it.
    private func pullStep(_ peer: Peer) async -> Duration {
        guard let runtime else { return .milliseconds(100) }
        let status = runtime.status
        guard status.role == .leader, status.activeActive.enabled, !peer.addresses.isEmpty else {
            return .milliseconds(100)
        }
        let link = lock.withLock { links[peer.id] ?? AALinkStatus() }
        let address = peer.addresses[link.addressIndex % peer.addresses.count]
        if isCatchingUp(peer.id, status: status) { return await catchUpStep(peer, address: address, runtime: runtime) }
        let after = max(status.activeActiveCursors[peer.id]?.lastIndex ?? 0, link.applied)
        let answer: DRClient.ActiveActivePull
        do {
            answer = try await client.pullActiveActive(address: address, after: after, from: clusterID, limits: settings.limits)
        } catch {
            note(peer.id, error: "pull from \(address): \(error)", rotate: true)
            return .milliseconds(200)
        }
        switch answer {
        case .refused(410, _):
            startCatchUp(peer.id)
            return .zero
        case .refused(let code, let why):
            note(peer.id, error: "\(address) answered \(code): \(why)", rotate: code == 421 || code == 503)
            return code == 421 ? .milliseconds(20) : .milliseconds(500)
        case .frame(let frame, let bytes):
            return await merge(frame, bytes: bytes, after: after, peer: peer.id, runtime: runtime)
        }
    }

    private func merge(_ frame: ActiveActiveFrame, bytes: Int, after: UInt64, peer: String,
                       runtime: NodeRuntime) async -> Duration {
        let batch = frame.batch
        guard batch.source == peer, batch.afterIndex == after else {
            note(peer, error: "\(peer) answered a batch of \(batch.source) after \(batch.afterIndex), asked after \(after)")
            return .milliseconds(500)
        }
        var result = CommandResult(index: 0, revision: 0)
        result.integer = Int64(clamping: after)
        // A batch without states moves only the cursor: logged once the cursor is far
        // enough behind (the source's log is held for it), not for every entry.
        // A batch cut short by the byte bound (its end before the source's commit: large
        // merged entries, which carry no states) is logged too, or the link would ask
        // for the same slice forever.
        // A batch whose progress vector moved is logged too (at most once per
        // progressIntervalMillis): causal stability, and so garbage collection, must not
        // wait for the source's next write.
        let cursorOnly = batch.states.isEmpty
        let cutShort = batch.lastIndex < batch.sourceCommit
        let now = Self.wallMillis()
        let progress = AAProgressSeen(progress: batch.progress, relayed: batch.relayed, atMillis: now)
        // A topology changed in the group is adopted at once (ActiveActiveTopologyVersion).
        if batch.lastIndex > after
            && (!cursorOnly || cutShort || batch.lastIndex - after >= Self.cursorOnlyAfterEntries
                || batch.topology.map { $0.version > runtime.status.activeActiveTopologyVersion } == true
                || lock.withLock { progressLogged[peer]?.isDue(progress, intervalMillis: settings.progressIntervalMillis) ?? true }) {
            do {
                result = try await runtime.execute(encoded: frame.mergeCommand)
            } catch {
                note(peer, error: "merging a batch: \(error)")
                return .milliseconds(100)
            }
            if result.error == nil { lock.withLock { progressLogged[peer] = progress } }
        }
        let updated = lock.withLock { () -> AALinkStatus in
            var link = links[peer] ?? AALinkStatus()
            link.lastContactMillis = now
            link.frames += 1
            link.bytes += UInt64(bytes)
            link.sourceCommit = batch.sourceCommit
            if let error = result.error {
                link.errors += 1
                link.lastError = "\(error)"
                if case .streamGap(_, let cursor, _) = error { link.applied = cursor }
            } else {
                link.applied = UInt64(clamping: result.integer)
                link.states += UInt64(result.keyCount)
                link.lastError = nil
            }
            link.examined = batch.lastIndex
            link.lagEntries = batch.sourceCommit > batch.lastIndex ? batch.sourceCommit - batch.lastIndex : 0
            if link.lagEntries == 0 { link.caughtUpMillis = now }
            link.lagMillis = link.lagEntries == 0 ? 0 : now - min(now, link.caughtUpMillis ?? now)
            links[peer] = link
            return link
        }
        AAMetrics.record(peer: peer, updated)
        return !cursorOnly && result.error == nil ? .zero : .milliseconds(1)
    }

    func note(_ peer: String, error message: String, rotate: Bool = false) {
        lock.withLock {
            var link = links[peer] ?? AALinkStatus()
            link.errors += 1
            link.lastError = message
            if rotate { link.addressIndex &+= 1 }
            links[peer] = link
        }
        logger.debug("aa: \(message)")
    }

    static func wallMillis() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }

    /// How far a link's cursor may stay behind over entries that carry nothing for
    /// this cluster before a cursor-only batch is logged.
    static let cursorOnlyAfterEntries: UInt64 = 1_024
}

/// The progress vectors of the last batch a link logged, and when.
struct AAProgressSeen: Sendable {
    var progress: [String: ActiveActiveProgress]
    var relayed: [String: [String: ActiveActiveProgress]]
    var atMillis: UInt64

    /// `true` when `next` says something this one did not and the interval has passed.
    func isDue(_ next: AAProgressSeen, intervalMillis: UInt64) -> Bool {
        guard next.progress != progress || next.relayed != relayed else { return false }
        return next.atMillis >= atMillis &+ intervalMillis || next.atMillis < atMillis
    }
}

/// One incoming active-active link, as the pulling leader sees it.
struct AALinkStatus: Sendable {
    var addressIndex = 0
    /// The last source index merged here (the cursor after the last batch logged).
    var applied: UInt64 = 0
    /// The last source index examined (a batch without states is not always logged).
    var examined: UInt64 = 0
    var sourceCommit: UInt64 = 0
    var lagEntries: UInt64 = 0
    /// How long the link has been behind (0 when caught up at the last contact).
    var lagMillis: UInt64 = 0
    var caughtUpMillis: UInt64?
    var lastContactMillis: UInt64?
    var frames: UInt64 = 0
    var states: UInt64 = 0
    var bytes: UInt64 = 0
    var errors: UInt64 = 0
    var lastError: String?
    /// `true` while the link catches up from the source's whole state (AACatchUp.swift).
    var catchingUp = false
    /// Catch-up pages merged.
    var catchUpPages: UInt64 = 0
}

/// Per-link lag metrics (Prometheus through swift-metrics), labelled by source cluster.
enum AAMetrics {
    static func record(peer: String, _ link: AALinkStatus) {
        Gauge(label: "aegis_aa_lag_entries", dimensions: [("source", peer)]).record(Double(link.lagEntries))
        Gauge(label: "aegis_aa_lag_seconds", dimensions: [("source", peer)]).record(Double(link.lagMillis) / 1000)
        Counter(label: "aegis_aa_frames_total", dimensions: [("source", peer)]).increment()
    }
}

extension DRClient {
    enum ActiveActivePull {
        case frame(ActiveActiveFrame, bytes: Int)
        case refused(status: Int, why: String)
    }

    /// Asks `address` (a peer's admin API) for its batch after `after`.
    func pullActiveActive(address: String, after: UInt64, from cluster: String,
                          limits: StreamLimits) async throws -> ActiveActivePull {
        let (host, port) = try parseAddress(address)
        let peer = cluster.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let response = try await AdminHTTPClient.send(method: "GET", host: host, port: port,
                                                      path: "/v1/aa/pull?after=\(after)&peer=\(peer)",
                                                      headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [],
                                                      body: nil, tls: tls, timeout: .seconds(10))
        guard response.status == 200 else {
            return .refused(status: response.status, why: String(decoding: response.body.prefix(512), as: UTF8.self))
        }
        let bytes = [UInt8](response.body)
        return .frame(try ActiveActiveFrame(decoding: bytes, limits: limits), bytes: bytes.count)
    }
}
