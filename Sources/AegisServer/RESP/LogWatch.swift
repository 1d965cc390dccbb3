import AegisKV
import AegisRaft
import AegisReplication
import NIOCore
import NIOConcurrencyHelpers

/// `AEGIS.WATCH <prefix> [FROM <index>]`: every committed change of the keys that
/// start with `prefix`, read from the Raft log in log order, from `index` on.
///
/// A watch cannot miss a change and never shows one twice: each event carries the
/// log index of the entry that made it, the entries are read from this node's log
/// (committed entries never change and every node holds the same ones at the same
/// index), and a watcher that reconnects — to any node, after a leader change — and
/// asks `FROM` the index after the last one it saw continues exactly where it was.
///
/// Replies (arrays in RESP2, push values in RESP3):
/// - `watch <prefix> <start>`: the watch began; `start` is the first log index it
///   examines (`FROM`, or without it the index after this node's commit index).
/// - `change <index> <event> <key> <argument>`: one change to one key, in log order;
///   several changes of one entry (a `MSET`, a `MULTI`) share its index. `event` is
///   the keyspace-notification name (`set`, `del`, `incrby`, `append`, `expire`,
///   `persist`, `expired`, `rename_from`, `rename_to`, `copy_to`, `sadd`, `srem`,
///   `hset`, `hdel`, `hincrby`, or `flushall`, whose key is the watched prefix: every
///   key of it is gone); `argument` is the value written by `set` (and `SETNX`,
///   `GETSET`, `MSET`…), the suffix of `append`, the decimal delta of `incrby`, else
///   null. Events describe the committed write *commands*, as the log holds them: a
///   write whose condition failed or that the state machine refused (`SET … NX` on an
///   existing key, `INCR` of a non-integer) still appears; read the key for its value.
/// - `progress <index>`: every entry up to `index` was examined and nothing more of
///   the prefix changed (sent at most every `progressInterval` while the log moves and
///   the prefix does not): a watcher resumes `FROM index + 1` without re-reading
///   entries it already passed.
/// - `compacted <next> <first>`: the entries from `next` on are no longer in this
///   node's log (it starts at `first`); the watch ends. `AEGIS.WATCH … FROM` an index
///   that is compacted away is refused with `-COMPACTED …` at once. A watcher that
///   must start over reads the keys it cares about after it started a new watch
///   (so that nothing between the read and the watch is missed).
///
/// One watch per connection; in RESP2 a watching connection accepts only
/// `AEGIS.UNWATCH`, `PING`, `QUIT` and `RESET`. Memory is bounded: at most
/// `RESPLimits.maxWatches` watches per node, each reading at most
/// `RESPLimits.watchReadBytes` of log at a time and waiting until the client read
/// what was pushed before it reads more (a client that does not read holds one batch).
public final class LogWatchHub: Sendable {
    /// How often a watch reports progress while the log moves and its prefix does not.
    public let progressInterval: Duration
    /// How often a watch looks for new entries when nothing signals applied entries
    /// (a hub without a node's log feeding it).
    let pollInterval: Duration

    private struct Waiter {
        var beyond: LogIndex
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var applied: LogIndex = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var watches: [Int64: Task<LogIndex, Never>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Creates a hub.
    public init(progressInterval: Duration = .seconds(1), pollInterval: Duration = .milliseconds(50)) {
        self.progressInterval = progressInterval
        self.pollInterval = pollInterval
    }

    /// Called for every applied entry (`NodeConfiguration.onApplied`, through
    /// `PubSubHub.observer`): wakes the watches waiting for it.
    func applied(_ index: LogIndex) {
        let woken = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.applied = max(state.applied, index)
            guard !state.waiters.isEmpty else { return [] }
            let ready = state.waiters.filter { $0.value.beyond < index }
            for id in ready.keys { state.waiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Waits until an entry after `index` is applied, `timeout` passed, or the task is
    /// cancelled, whichever comes first.
    func wait(beyond index: LogIndex, timeout: Duration) async {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiter &+= 1
            return state.nextWaiter
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.wake(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLockedValue { state -> Bool in
                    if state.applied > index || Task.isCancelled { return true }
                    state.waiters[id] = Waiter(beyond: index, continuation: continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            wake(id)
        }
        timer.cancel()
    }

    private func wake(_ id: UInt64) {
        state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
    }

    /// Registers the watch task of `client`; `false` (nothing registered) when the
    /// client already watches or `limit` watches run.
    func register(_ client: Int64, limit: Int, start: () -> Task<LogIndex, Never>) -> Bool {
        state.withLockedValue { state in
            guard state.watches[client] == nil, state.watches.count < limit else { return false }
            state.watches[client] = start()
            return true
        }
    }

    /// Forgets the watch of `client` once its task ended by itself.
    func finished(_ client: Int64) {
        _ = state.withLockedValue { $0.watches.removeValue(forKey: client) }
    }

    /// Stops the watch of `client` (it unwatched or reset) and waits until it pushed
    /// its last message. The last index it examined; `nil` when it had no watch.
    @discardableResult
    func stop(_ client: Int64) async -> LogIndex? {
        guard let task = state.withLockedValue({ $0.watches.removeValue(forKey: client) }) else { return nil }
        task.cancel()
        return await task.value
    }

    /// Stops the watch of a client that disconnected, without waiting.
    func cancel(_ client: Int64) {
        state.withLockedValue { $0.watches.removeValue(forKey: client) }?.cancel()
    }

    /// `true` while `client` has a watch running.
    func isWatching(_ client: Int64) -> Bool { state.withLockedValue { $0.watches[client] != nil } }

    /// The number of watches running on this node.
    public var count: Int { state.withLockedValue { $0.watches.count } }
}

/// One watch: where it is and what it reports.
struct LogWatch {
    /// Sends values to the client and waits until they were written; `false` when the
    /// client is gone.
    typealias Push = @Sendable ([RESPValue]) async -> Bool

    let prefix: [UInt8]
    /// The last index examined.
    var cursor: LogIndex
    let backend: any KVBackend
    let hub: LogWatchHub
    /// Waits for applied entries (`true`), or polls (`false`).
    let signalled: Bool
    let readBytes: Int
    let version: RESPVersion
    /// The user's key permissions, when they are not `*`.
    let user: ACLUser?
    let push: Push

    /// The confirmation of a watch that starts at `start`.
    static func started(_ prefix: [UInt8], _ start: LogIndex, version: RESPVersion) -> RESPValue {
        shaped([.bulk("watch"), .bulkString(prefix), .integer(Int64(clamping: start))], version)
    }

    static func shaped(_ elements: [RESPValue], _ version: RESPVersion) -> RESPValue {
        version == .resp3 ? .push(elements) : .array(elements)
    }

    /// Reads, filters and pushes until the task is cancelled, the client is gone, or
    /// the log was compacted past the cursor.
    mutating func run() async {
        var lastMessage = ContinuousClock.now
        var reported = cursor
        while !Task.isCancelled {
            let read: CommittedEntries
            do {
                read = try await backend.committedLog(after: cursor, maxCount: 4096, maxBytes: readBytes)
            } catch {
                // A node that stops or is unavailable for a moment: try again shortly.
                await hub.wait(beyond: .max, timeout: hub.pollInterval)
                continue
            }
            if read.entries.isEmpty {
                if cursor < read.commitIndex, cursor &+ 1 < read.firstIndex {
                    _ = await push([Self.shaped([.bulk("compacted"), .integer(Int64(clamping: cursor &+ 1)),
                                                 .integer(Int64(clamping: read.firstIndex))], version)])
                    return
                }
                if reported < cursor, ContinuousClock.now - lastMessage >= hub.progressInterval {
                    guard await push([progress()]) else { return }
                    (reported, lastMessage) = (cursor, .now)
                }
                await hub.wait(beyond: cursor, timeout: signalled ? hub.progressInterval : hub.pollInterval)
                continue
            }
            var events: [RESPValue] = []
            for entry in read.entries where entry.index > cursor {
                cursor = entry.index
                guard entry.type == .command, let command = try? Command(decoding: entry.data) else { continue }
                events.append(contentsOf: self.events(entry.index, command))
            }
            if events.isEmpty {
                guard reported < cursor, ContinuousClock.now - lastMessage >= hub.progressInterval else { continue }
                events.append(progress())
            }
            guard await push(events) else { return }
            (reported, lastMessage) = (cursor, .now)
        }
    }

    private func progress() -> RESPValue {
        Self.shaped([.bulk("progress"), .integer(Int64(clamping: cursor))], version)
    }

    /// The events of one entry for this watch's prefix and user.
    func events(_ index: LogIndex, _ command: Command) -> [RESPValue] {
        KeyspaceNotificationFlags.changes(of: command).compactMap { change in
            let key = change.key?.bytes ?? prefix
            guard change.key == nil || key.starts(with: prefix), user?.mayAccess(key: key) ?? true else { return nil }
            return Self.shaped([.bulk("change"), .integer(Int64(clamping: index)), .bulk(change.event), .bulkString(key),
                                change.argument.map(RESPValue.bulkString) ?? .null], version)
        }
    }
}

/// `AEGIS.WATCH` and `AEGIS.UNWATCH` on a connection.
extension RESPSession {
    /// Parses `AEGIS.WATCH prefix [FROM index]` and finds where the watch starts: its
    /// confirmation and the watch, or the error reply.
    mutating func prepareWatch(_ arguments: ArraySlice<ByteBuffer>) async -> Result<(RESPValue, LogWatch), RESPErrorReply> {
        let start = arguments.startIndex
        let prefix = bytes(arguments[start])
        var from: LogIndex?
        if arguments.count == 3, String(buffer: arguments[start + 1]).uppercased() == "FROM" {
            guard let index = UInt64(String(buffer: arguments[start + 2])) else {
                return .failure(RESPErrorReply(.error("ERR FROM needs a log index (a decimal integer from 0)")))
            }
            from = index
        } else if arguments.count != 1 {
            return .failure(RESPErrorReply(RESPError.syntax))
        }
        let hub = server.pubsub.watches, limit = server.configuration.limits.maxWatches
        guard let push = watchTarget else {
            return .failure(RESPErrorReply(.error("ERR this connection cannot receive pushed messages")))
        }
        guard !hub.isWatching(clientID) else {
            return .failure(RESPErrorReply(.error("ERR this connection watches already: one watch per connection (AEGIS.UNWATCH first)")))
        }
        guard hub.count < limit else {
            return .failure(RESPErrorReply(.error("ERR max number of watches reached (\(limit), --max-watches)")))
        }
        let position: CommittedEntries
        do {
            position = try await server.backend.committedLog(after: 0, maxCount: 0, maxBytes: 0)
        } catch {
            return .failure(RESPErrorReply(RESPError.reply(for: error)))
        }
        // Index 0 is before the first entry: FROM 0 and FROM 1 both start at the beginning.
        let first = max(1, from ?? position.commitIndex &+ 1)
        if first < position.firstIndex {
            return .failure(RESPErrorReply(.error("COMPACTED index \(first) is compacted away: this node's log starts at "
                + "\(position.firstIndex); read the keys again and watch without FROM (or FROM \(position.firstIndex))")))
        }
        let keyRules = user.flatMap { $0.keyPatterns == ["*"] ? nil : $0 }
        let watch = LogWatch(prefix: prefix, cursor: first - 1, backend: server.backend, hub: hub, signalled: server.pubsub.fedByLog,
                             readBytes: max(1, server.configuration.limits.watchReadBytes), version: version,
                             user: keyRules, push: push)
        return .success((LogWatch.started(prefix, first, version: version), watch))
    }

    /// Starts a watch whose confirmation was sent.
    mutating func startWatch(_ watch: LogWatch) async {
        let hub = server.pubsub.watches, client = clientID
        let started = hub.register(client, limit: server.configuration.limits.maxWatches) {
            Task {
                var running = watch
                await running.run()
                hub.finished(client)
                return running.cursor
            }
        }
        if started {
            watching = true
        } else if let push = watchTarget {
            // Another connection took the last watch between the check and now.
            _ = await push([.error("ERR max number of watches reached (\(server.configuration.limits.maxWatches), --max-watches)")])
        }
    }

    /// `AEGIS.UNWATCH`: stops the watch once everything it read was pushed; replies
    /// `unwatch <next>`, the index to watch `FROM` to continue (null without a watch).
    mutating func unwatch() async -> RESPValue {
        let next = await server.pubsub.watches.stop(clientID).map { $0 &+ 1 }
        watching = false
        return LogWatch.shaped([.bulk("unwatch"), next.map { .integer(Int64(clamping: $0)) } ?? .null], version)
    }

    /// The refusal of `name` on a RESP2 connection that watches, or `nil`.
    mutating func watchingModeRefusal(_ name: String) -> RESPValue? {
        guard watching, version == .resp2, !["AEGIS.UNWATCH", "PING", "QUIT", "RESET"].contains(name) else { return nil }
        watching = server.pubsub.watches.isWatching(clientID)  // the watch may have ended by itself
        guard watching else { return nil }
        return .error("ERR Can't execute '\(name.lowercased())': only AEGIS.UNWATCH / PING / QUIT / RESET are allowed while watching")
    }
}
