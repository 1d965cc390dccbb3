import AegisCRDT
import AegisKV
import AegisRaft
import AegisReplication
import AegisStream
import Foundation
import Logging

/// The clusters of one `aegis-bench aa` scenario and their pull links (a mesh).
final class AAMesh: @unchecked Sendable {
    /// A successful write: its source log index and when its leader applied it.
    struct Write { var index: UInt64; var time: Double }
    /// A pull link: `target` pulls `source`'s changes.
    struct Link { var source: Int; var target: Int; var name: String }
    /// A merge applied on the target: the source range it covered and when.
    struct Merge { var after: UInt64; var last: UInt64; var time: Double }

    enum Goal {
        /// Until each link's cursor reaches its source's entry in `targets`.
        case caughtUp(targets: [UInt64])
        /// Until `writersDone(lastIndexes:)` is called and the links reach those.
        case writersDoneThenCaughtUp
    }

    struct LinkRun {
        var merges: [[Merge]]
        var lastMerge: [Double?]
        var errors: Int
        var lastError: String?
    }

    let clusters: [LocalCluster]
    let ids: [String]
    let links: [Link]
    let settings: StreamSettings
    private let lock = NSLock()
    /// Each link's cursor (kept across phases, as the receiver's log keeps it).
    private var cursors: [UInt64]
    private var finalIndexes: [UInt64]?

    private init(clusters: [LocalCluster], ids: [String], settings: StreamSettings) {
        self.clusters = clusters
        self.ids = ids
        self.settings = settings
        var links: [Link] = []
        for target in ids.indices {
            for source in ids.indices where source != target {
                links.append(Link(source: source, target: target, name: "\(ids[source])->\(ids[target])"))
            }
        }
        self.links = links
        self.cursors = Array(repeating: 0, count: links.count)
    }

    /// Starts `clusters` clusters of `nodes` nodes with active-active enabled.
    static func start(clusters count: Int, nodes: Int, root: String, settings: StreamSettings,
                      timeout: Double) async throws -> AAMesh {
        var logger = Logger(label: "aegis.bench.aa")
        logger.logLevel = .warning
        var raft = NodeConfiguration.defaultRaft
        raft.electionTimeout = 100
        raft.heartbeatInterval = 10
        // No compaction during a run: the links' cursors stay inside every log.
        raft.snapshotThreshold = 100_000_000
        var clusters: [LocalCluster] = []
        let ids = (1 ... count).map { "aa\($0)" }
        for id in ids {
            let cluster = try LocalCluster(count: nodes, directory: "\(root)/\(id)", raft: raft, replica: ReplicaID(id),
                                           logger: logger)
            try await cluster.start()
            clusters.append(cluster)
        }
        let mesh = AAMesh(clusters: clusters, ids: ids, settings: settings)
        for k in clusters.indices {
            let leader = try await clusters[k].waitForLeader(timeout: .seconds(timeout))
            guard let runtime = clusters[k].members[leader].runtime else { throw AABenchError("\(ids[k]) has no leader") }
            let result = try await runtime.execute(.setActiveActive(ActiveActiveSettings(enabled: true)))
            if let error = result.error { throw AABenchError("enabling active-active on \(ids[k]): \(error)") }
        }
        return mesh
    }

    func shutdown() async {
        for cluster in clusters { await cluster.shutdown() }
    }

    /// The runtime of cluster `k`'s leader.
    func leader(_ k: Int) throws -> NodeRuntime {
        guard let index = clusters[k].leaderIndex, let runtime = clusters[k].members[index].runtime else {
            throw AABenchError("\(ids[k]) has no leader")
        }
        return runtime
    }

    /// The writers of the load phase are done: the last index each cluster wrote.
    func writersDone(lastIndexes: [UInt64]) { lock.withLock { finalIndexes = lastIndexes } }

    /// Runs every link until `goal`, for at most `timeout` seconds.
    func runLinks(until goal: Goal, timeout: Double) async throws -> LinkRun {
        let deadline = monotonicSeconds() + timeout
        var run = LinkRun(merges: Array(repeating: [], count: links.count),
                          lastMerge: Array(repeating: nil, count: links.count), errors: 0)
        await withTaskGroup(of: (Int, [Merge], Int, String?).self) { group in
            for k in links.indices {
                group.addTask { await self.runLink(k, goal: goal, deadline: deadline) }
            }
            for await (k, merges, errors, lastError) in group {
                run.merges[k] = merges
                run.lastMerge[k] = merges.last?.time
                run.errors += errors
                run.lastError = lastError ?? run.lastError
            }
        }
        return run
    }

    private func target(of k: Int, goal: Goal) -> UInt64? {
        switch goal {
        case .caughtUp(let targets): return targets[links[k].source]
        case .writersDoneThenCaughtUp: return lock.withLock { finalIndexes?[links[k].source] }
        }
    }

    /// One link's loop: the pulling leader's steps (`AACoordinator.pullStep`).
    private func runLink(_ k: Int, goal: Goal, deadline: Double) async -> (Int, [Merge], Int, String?) {
        let link = links[k]
        var merges: [Merge] = []
        var errors = 0
        var lastError: String?
        var cursor = lock.withLock { cursors[k] }
        defer { lock.withLock { cursors[k] = cursor } }
        while true {
            if let wanted = target(of: k, goal: goal), cursor >= wanted { break }
            guard monotonicSeconds() < deadline else {
                errors += 1
                lastError = "\(link.name): timed out at cursor \(cursor)"
                break
            }
            do {
                let source = try leader(link.source)
                let receiver = try leader(link.target)
                let read = try await source.activeActiveBatch(after: cursor, source: ids[link.source], sourceTime: Self.wallMillis(),
                                                              maxCount: settings.maxBatchEntries, maxBytes: settings.maxBatchBytes)
                if cursor < read.commitIndex && cursor + 1 < read.firstIndex {
                    throw AABenchError("\(link.name): the source compacted past the cursor \(cursor)")
                }
                let batch = read.batch
                // As the coordinator: a batch without states is logged only far behind,
                // or when the byte bound cut it short (large merged entries).
                let cutShort = batch.lastIndex < batch.sourceCommit
                if batch.lastIndex <= cursor || (batch.states.isEmpty && !cutShort && batch.lastIndex - cursor < 1_024) {
                    try await Task.sleep(for: .milliseconds(1))
                    continue
                }
                let bytes = try ActiveActiveFrame(batch: batch, sourceTime: Self.wallMillis()).encoded(compression: settings.compression)
                let frame = try ActiveActiveFrame(decoding: bytes, limits: settings.limits)
                let result = try await receiver.execute(encoded: frame.mergeCommand)
                if let error = result.error {
                    errors += 1
                    lastError = "\(link.name): \(error)"
                    if case .streamGap(_, let applied, _) = error { cursor = applied }
                    continue
                }
                cursor = UInt64(clamping: result.integer)
                merges.append(Merge(after: frame.batch.afterIndex, last: frame.batch.lastIndex, time: monotonicSeconds()))
            } catch {
                errors += 1
                lastError = "\(link.name): \(error)"
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        return (k, merges, errors, lastError)
    }

    static func wallMillis() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}

struct AABenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
