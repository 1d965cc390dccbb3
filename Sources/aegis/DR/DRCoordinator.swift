import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import Foundation
import Logging
import Metrics
import NIOSSL
import ServiceLifecycle

/// The disaster-recovery side of one node (`aegis serve`): serves the change stream
/// when this node leads a primary (or a fenced primary being drained), pulls it when
/// this node leads a standby, holds the write lease, and fences this cluster when it
/// learns that a failover replaced it. Every node runs one; only the leader acts.
final class DRCoordinator: Service, @unchecked Sendable {
    let settings: StreamSettings
    let clusterID: String
    /// This cluster's client and admin addresses, named to the other cluster.
    let clientAddresses: String
    let adminAddresses: String
    /// `--standby-of`: makes a cluster never configured for DR a standby of these admin addresses.
    let standbyOf: String?
    /// `--dr-peer`: the other cluster's admin addresses, asked whether it was promoted
    /// when this primary lost its lease.
    let peers: [String]
    let lease = WriteLease()
    let promise = StandbyPromise()
    let client: DRClient
    let logger: Logger
    /// Waits this much more than the lease before a promotion (clock-rate drift, and
    /// a deposed standby leader that still asks until check-quorum deposes it).
    let promotionMargin: Duration

    private let lock = NSLock()
    private var runtimeBox: NodeRuntime?
    private var link = LinkStatus()
    /// The standby's cursor in its last request to this node (or the snapshot index it
    /// is being re-seeded from), and when (monotonic ns): the log is not compacted past
    /// it while the link is live (`StreamSettings.maxEntriesHeld`, `linkHoldMillis`).
    private var held: (index: LogIndex, at: UInt64)?
    private var leaseProposedFor: UInt64?
    private var stopping = false
    private var isolatedFlag = false

    /// `aegis serve --dr-drill-copy`: a drill's throw-away copy, whose DR side never
    /// contacts another cluster (no pulls, no fencing checks).
    var isolated: Bool {
        get { lock.withLock { isolatedFlag } }
        set { lock.withLock { isolatedFlag = newValue } }
    }

    init(settings: StreamSettings, clusterID: String, clientAddresses: String, adminAddresses: String,
         standbyOf: String?, peers: [String], client: DRClient, promotionMargin: Duration, logger: Logger) {
        self.settings = settings
        self.clusterID = clusterID
        self.clientAddresses = clientAddresses
        self.adminAddresses = adminAddresses
        self.standbyOf = standbyOf
        self.peers = peers
        self.client = client
        self.promotionMargin = promotionMargin
        self.logger = logger
    }

    /// Attaches the node (after it is created: its configuration holds `writeGuard`).
    func attach(_ runtime: NodeRuntime) { lock.withLock { runtimeBox = runtime } }

    var runtime: NodeRuntime? { lock.withLock { runtimeBox } }

    /// The standby link's state (on a standby's leader).
    var linkStatus: LinkStatus { lock.withLock { link } }

    /// The node's data directory (a primary serves its snapshot file to re-seed a standby).
    var dataDirectory = ""

    /// The compaction floor for `NodeConfiguration.compactionFloor`: what a live standby
    /// link still needs, at most `maxEntriesHeld` entries behind the commit index, and
    /// nothing once the standby asked nothing for `linkHoldMillis` (see `StreamHold`).
    var compactionFloor: LogIndex? {
        let held = lock.withLock { self.held }
        return StreamHold.floor(held: held, commitIndex: runtime?.status.commitIndex ?? 0, settings: settings,
                                now: WriteLease.monotonicNanoseconds())
    }

    /// Changes the standby link's state.
    func updateLink(_ change: (inout LinkStatus) -> Void) { lock.withLock { change(&link) } }

    /// Whether the service is stopping.
    var isStopping: Bool { lock.withLock { stopping } }

    /// Records what the standby needs now (its cursor, or a snapshot being shipped).
    func hold(_ index: LogIndex) {
        let now = WriteLease.monotonicNanoseconds()
        lock.withLock { held = (index, now) }
    }

    // MARK: The write guard (on the leader, before a client command is logged)

    /// Why a client command must be refused now, or `nil` (`WriteGate`).
    func writeRefusal(_ data: [UInt8]) -> ReplicationError? {
        guard let status = runtime?.status else { return nil }
        return WriteGate.refusal(for: data, state: status.dr, lease: lease, pendingStandby: standbyOf).map { .rejected($0) }
    }

    // MARK: Serving the stream (source side)

    /// What a pull gets.
    enum PullAnswer {
        case frame([UInt8])
        case notLeader(NodeID?)
        case notSource(DRState)
        case gone(firstIndex: LogIndex)
        case failed(String)
    }

    /// Serves one pull of the standby: the committed entries after `after` as a frame,
    /// waiting up to `pollWaitMillis` for new ones.
    func servePull(after: UInt64, token: LeaseToken?, standbyLease: UInt64?) async -> PullAnswer {
        guard let runtime else { return .failed("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else { return .notLeader(status.leader) }
        let dr = status.dr
        guard dr.role != .standby else { return .notSource(dr) }
        if let token { lease.renew(echoing: token, leaseMillis: dr.leaseMillis) }
        if let standbyLease, dr.role == .primary, standbyLease != dr.leaseMillis { adoptLease(standbyLease, dr: dr) }
        hold(after)
        let deadline = ContinuousClock.now + .milliseconds(Int64(clamping: settings.pollWaitMillis))
        var read: CommittedEntries
        do {
            while true {
                read = try await runtime.committedEntries(after: after, maxCount: settings.maxBatchEntries,
                                                          maxBytes: settings.maxBatchBytes)
                if after < read.commitIndex && after + 1 < read.firstIndex { return .gone(firstIndex: read.firstIndex) }
                if !read.entries.isEmpty || ContinuousClock.now >= deadline { break }
                try await Task.sleep(for: .milliseconds(5))
            }
        } catch {
            return .failed("\(error)")
        }
        var batcher = StreamBatcher(source: clusterID)
        let batch = batcher.batch(after: after, entries: read.entries, epoch: dr.epoch,
                                  sourceCommit: max(read.commitIndex, after))
        let frame = StreamFrame(batch: batch, sourceTime: Self.wallMillis(), leaseToken: lease.token())
        do { return .frame(try frame.encoded(compression: settings.compression)) } catch { return .failed("\(error)") }
    }

    /// Records the standby's lease in this primary's state (once per value).
    private func adoptLease(_ millis: UInt64, dr: DRState) {
        let first = lock.withLock { () -> Bool in
            if leaseProposedFor == millis { return false }
            leaseProposedFor = millis
            return true
        }
        guard first, let runtime else { return }
        let transition = DRTransition(epoch: dr.epoch, role: .primary, leaseMillis: millis)
        Task { [logger] in
            do {
                _ = try await runtime.execute(.setDRState(transition))
                logger.notice("the standby asks for a write lease: writes now need its acknowledgements",
                              metadata: ["lease_ms": "\(millis)"])
            } catch {
                self.lock.withLock { self.leaseProposedFor = nil }
            }
        }
    }

    // MARK: Transitions (admin API)

    /// Proposes a transition through this cluster's log; the entry's index.
    func transition(_ transition: DRTransition) async throws -> LogIndex {
        guard let runtime else { throw ToolError("the node is starting") }
        let result = try await runtime.execute(.setDRState(transition))
        if let error = result.error { throw ToolError("\(error)") }
        return result.index
    }

    /// Promotes this standby: waits out the lease unless `force`, then raises the epoch.
    func promote(force: Bool) async throws -> (epoch: UInt64, index: LogIndex, waitedMillis: UInt64) {
        guard let runtime else { throw ToolError("the node is starting") }
        let status = runtime.status
        guard status.role == .leader else {
            throw ToolError("not the leader (\(status.leader?.rawValue ?? "none known")): promote on the standby's leader")
        }
        let dr = status.dr
        guard dr.role == .standby || (force && dr.role == .fenced) else {
            throw ToolError("this cluster is \(dr.role), not a standby; nothing to promote")
        }
        var waited: UInt64 = 0
        if !force {
            let marginMillis = WriteLease.nanoseconds(promotionMargin) / 1_000_000
            waited = promise.millisUntilFree(leaseMillis: settings.leaseMillis) + (settings.leaseMillis > 0 ? marginMillis : 0)
            if waited > 0 {
                logger.notice("waiting out the old primary's write lease before promoting", metadata: ["ms": "\(waited)"])
                try await Task.sleep(for: .milliseconds(Int64(clamping: waited)))
            }
        }
        let epoch = max(dr.epoch, runtime.status.dr.epoch) + 1
        let index = try await transition(DRTransition(epoch: epoch, role: .primary))
        lease.revoke()
        return (epoch, index, waited)
    }

    // MARK: The loop: initialisation, pulling (standby), fencing (primary)

    func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !lock.withLock({ stopping }) {
                let pause = await step()
                try? await Task.sleep(for: pause)
            }
        } onGracefulShutdown: {
            self.lock.withLock { self.stopping = true }
        }
    }

    /// One round; how long to pause before the next.
    private func step() async -> Duration {
        guard let runtime, !isolated else { return .milliseconds(100) }
        let status = runtime.status
        guard status.role == .leader else {
            lease.revoke()
            // Another node may be asking the primary for changes: a node that becomes the
            // leader waits a whole lease from then before it may promote.
            promise.willSend()
            return .milliseconds(100)
        }
        let dr = status.dr
        if dr.isInitial, let standbyOf {
            await becomeStandby(of: standbyOf)
            return .milliseconds(50)
        }
        switch dr.role {
        case .standby:
            return await pull(dr: dr, runtime: runtime)
        case .primary where dr.leaseMillis > 0 && !lease.isValid && !peers.isEmpty:
            await checkIfReplaced(dr: dr)
            return .seconds(1)
        default:
            return .milliseconds(100)
        }
    }

    /// `--standby-of` on a cluster never configured: asks the primary who it is, then
    /// records the standby role through the log.
    private func becomeStandby(of admin: String) async {
        do {
            let primary = try await client.drDocument(addresses: admin.split(separator: ",").map(String.init))
            _ = try await transition(DRTransition(epoch: primary.epoch, role: .standby, primary: primary.clientAddresses,
                                                  primaryAdmin: admin, leaseMillis: settings.leaseMillis))
            logger.notice("this cluster is now a standby", metadata: ["primary": "\(primary.clusterID)", "epoch": "\(primary.epoch)"])
        } catch {
            noteError("cannot become a standby of \(admin): \(error)")
        }
    }

    /// A primary without its lease asks its peer whether it was promoted; if so, fences itself.
    private func checkIfReplaced(dr: DRState) async {
        guard let peer = try? await client.drDocument(addresses: peers) else { return }
        guard peer.role == ClusterRole.primary.description, peer.epoch > dr.epoch else { return }
        do {
            _ = try await transition(DRTransition(epoch: peer.epoch, role: .fenced, primary: peer.clientAddresses,
                                                  primaryAdmin: peers.joined(separator: ",")))
            logger.warning("a failover replaced this cluster: fenced", metadata: ["new_primary": "\(peer.clusterID)",
                                                                                "epoch": "\(peer.epoch)"])
        } catch {
            noteError("cannot fence this cluster: \(error)")
        }
    }

    /// Pulls one frame and applies it through the log.
    private func pull(dr: DRState, runtime: NodeRuntime) async -> Duration {
        let addresses = dr.primaryAdmin.split(separator: ",").map(String.init)
        guard !addresses.isEmpty else { return .seconds(1) }
        let current = lock.withLock { link }
        let address = addresses[current.addressIndex % addresses.count]
        // A failed-back standby starts from its new primary's snapshot (`aegis dr rejoin`).
        if !dr.pendingSeed.isEmpty { return await seed(from: address, runtime: runtime) }
        let source = current.source ?? dr.cursors.max { $0.value.epoch < $1.value.epoch }?.key
        let after = max(source.flatMap { dr.cursors[$0]?.lastIndex } ?? 0, current.source == source ? current.applied : 0)
        promise.willSend()
        let started = ContinuousClock.now
        let answer: DRClient.PullResult
        do {
            answer = try await client.pull(address: address, after: after, token: current.token,
                                           lease: settings.leaseMillis, limits: settings.limits)
        } catch {
            noteError("pull from \(address): \(error)", rotate: true)
            return .milliseconds(200)
        }
        switch answer {
        case .frame(let frame, let bytes):
            return await apply(frame, bytes: bytes, after: after, started: started, runtime: runtime)
        case .refused(410, let why):
            noteError("\(address) answered 410: \(why); re-seeding from its snapshot")
            return await seed(from: address, runtime: runtime)
        case .refused(let status, let why):
            noteError("\(address) answered \(status): \(why)", rotate: status == 421 || status == 503)
            return status == 421 ? .milliseconds(20) : .milliseconds(500)
        }
    }

    private func apply(_ frame: StreamFrame, bytes: Int, after: UInt64, started: ContinuousClock.Instant,
                       runtime: NodeRuntime) async -> Duration {
        let batch = frame.batch
        guard batch.afterIndex == after else {
            noteError("the primary answered a batch after \(batch.afterIndex), asked after \(after)")
            return .milliseconds(200)
        }
        var result = CommandResult(index: 0, revision: 0)
        result.integer = Int64(clamping: after)
        // An empty answer (nothing new) renews the lease and the contact, and logs nothing.
        if batch.lastIndex > after || !batch.changes.isEmpty {
            do {
                result = try await runtime.execute(.streamBatch(batch))
            } catch {
                noteError("applying a batch: \(error)")
                return .milliseconds(100)
            }
        }
        let now = Self.wallMillis()
        lock.withLock {
            link.source = batch.source
            link.token = frame.leaseToken
            link.lastContactMillis = now
            link.sourceCommit = batch.sourceCommit
            link.frames += 1
            link.bytes += UInt64(bytes)
            if let error = result.error {
                link.errors += 1
                link.lastError = "\(error)"
                if case .streamGap(_, let cursor, _) = error { link.applied = cursor }
            } else {
                link.applied = UInt64(clamping: result.integer)
                link.changes += UInt64(result.keyCount)
                link.lastError = nil
            }
            link.lagEntries = batch.sourceCommit > link.applied ? batch.sourceCommit - link.applied : 0
            let newest = batch.changes.last?.timestamp.physical
            link.lagMillis = link.lagEntries == 0 ? 0
                : frame.sourceTime > (newest ?? frame.sourceTime) ? frame.sourceTime - (newest ?? frame.sourceTime) : 0
        }
        DRMetrics.record(linkStatus)
        // A full batch: more is waiting, ask again at once.
        return batch.lastIndex > after ? .zero : .milliseconds(1)
    }

    func noteError(_ message: String, rotate: Bool = false) {
        lock.withLock {
            link.errors += 1
            link.lastError = message
            if rotate {
                link.addressIndex &+= 1
                link.token = nil
            }
        }
        logger.debug("dr: \(message)")
    }

    static func wallMillis() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}

/// The standby side of the link, as its leader sees it.
struct LinkStatus: Sendable {
    var source: String?
    var token: LeaseToken?
    var addressIndex = 0
    /// The last source index applied here.
    var applied: UInt64 = 0
    var sourceCommit: UInt64 = 0
    var lagEntries: UInt64 = 0
    var lagMillis: UInt64 = 0
    var lastContactMillis: UInt64?
    var frames: UInt64 = 0
    var changes: UInt64 = 0
    var bytes: UInt64 = 0
    var errors: UInt64 = 0
    var lastError: String?
    /// Re-seeds from the primary's snapshot completed, and the last one's source index.
    var seeds: UInt64 = 0
    var lastSeedIndex: UInt64?
}

/// The DR metrics (Prometheus through swift-metrics).
enum DRMetrics {
    static let lagEntries = Gauge(label: "aegis_dr_lag_entries")
    static let lagSeconds = Gauge(label: "aegis_dr_lag_seconds")
    static let frames = Counter(label: "aegis_dr_frames_total")

    static func record(_ link: LinkStatus) {
        lagEntries.record(Double(link.lagEntries))
        lagSeconds.record(Double(link.lagMillis) / 1000)
        frames.increment()
    }
}
