import AegisKV
import CoreMetrics
import Foundation
public import Logging
import NIOConcurrencyHelpers
public import NIOCore

/// What every connection of one RESP server shares.
final class RESPServerContext: Sendable {
    let configuration: RESPServerConfiguration
    let backend: any KVBackend
    let metrics: RESPMetrics
    let startTime = ContinuousClock.now
    /// Connections open now, for `INFO clients` and `RESPLimits.maxClients`.
    let connectedClients = NIOLockedValueBox(0)
    /// The bytes all connections hold for unfinished commands.
    let partialRequests: RESPPartialRequestBudget
    /// The ACL users.
    let acl: ACLStore
    /// Failed authentications, logged at a bounded rate.
    let authLog: RateLimitedLog
    /// Failed authentications per client address.
    let authFailures: AuthFailuresByAddress
    /// Pub/sub subscriptions of this node's clients.
    let pubsub: PubSubHub

    init(configuration: RESPServerConfiguration, backend: any KVBackend, metrics: RESPMetrics, acl: ACLStore?,
         logger: Logger, pubsub: PubSubHub? = nil) {
        self.partialRequests = RESPPartialRequestBudget(limit: configuration.limits.maxPartialRequestBytesTotal)
        self.configuration = configuration
        self.backend = backend
        self.metrics = metrics
        self.acl = acl ?? ACLStore(defaultPassword: configuration.password)
        self.authLog = RateLimitedLog(logger: logger)
        self.authFailures = AuthFailuresByAddress(throttle: configuration.authThrottle)
        self.pubsub = pubsub ?? PubSubHub(fedByLog: false, maxSubscriptionsPerClient: configuration.limits.maxSubscriptionsPerClient)
    }
}

/// One client connection's state, and the execution of its commands.
///
/// Commands are executed in order and answered in order. Within one batch (the
/// commands of one read), consecutive writes go to the backend in one
/// `execute(_ commands:)` call and consecutive reads in one `read(_:stale:)` call;
/// a read after a write waits for the write, so the pipeline behaves as if each
/// command ran alone. Commands that change the connection's state (`HELLO`,
/// `AUTH`, `READONLY`, …) first answer everything before them.
public struct RESPSession {
    /// What the connection shares with the server.
    let server: RESPServerContext
    /// The connection's ID (`CLIENT ID`).
    let clientID: Int64
    /// The protocol version of the replies.
    var version: RESPVersion = .resp2
    /// The ACL user the connection runs as; `nil` until `AUTH` succeeds (at once the
    /// `default` user when it needs no password).
    var user: ACLUser?
    /// The `ACLStore.generation` `user` was read at; re-read when it changes.
    var userGeneration: UInt64 = 0
    /// Failed `AUTH`s on this connection, for `RESPAuthThrottle`.
    var failedAuths = 0
    /// The client's address and port, for the log.
    var remote = "?"
    /// The client's IP address, under which failed `AUTH`s are counted across its
    /// connections (`nil`: per connection only).
    var remoteHost: String?
    /// `CLIENT SETNAME`.
    var name: String?
    /// `CLIENT SETINFO LIB-NAME` / `LIB-VER`.
    var library: (name: String?, version: String?) = (nil, nil)
    /// `READONLY`: reads on this connection may be served from local, possibly stale, state.
    var staleReads = false
    /// Replies written to the output buffer and not handed to the connection yet.
    var unsentReplies = 0
    /// Channels and patterns this connection subscribes to.
    var subscriptions = 0
    /// `true` once `AEGIS.WATCH` started a watch (it may since have ended by itself:
    /// `LogWatchHub.isWatching` says).
    var watching = false
    /// Sends pushed values (a watch's events) on this connection and waits until they
    /// were written; `false` when the connection is gone. Set by the server for a real
    /// connection (`nil`: `AEGIS.WATCH` is refused).
    public var watchTarget: (@Sendable ([RESPValue]) async -> Bool)?
    /// Sends a pushed value (a subscribed message) on this connection; set by the
    /// server for a real connection (`nil`: subscribing is refused).
    public var pushTarget: (@Sendable (RESPValue) -> Void)?
    /// Keys per backend read call; see `readChunkBytes`.
    var readChunk = 16
    /// The transaction being queued (`MULTI`), `nil` outside one.
    var transaction: QueuedTransaction?
    /// The keys `WATCH`ed since the last `EXEC`, `DISCARD` or `UNWATCH`, with the
    /// modify revision each had.
    var watchedKeys: [WatchedKey] = []

    /// Creates the state of a new connection.
    init(server: RESPServerContext, clientID: Int64) {
        self.server = server
        self.clientID = clientID
        self.user = initialUser()
    }

    /// Creates a session that runs commands against `backend` without a network
    /// connection: for tests and embedding.
    ///
    /// - Parameters:
    ///   - acl: the users; by default only `default`, with `configuration.password`.
    ///   - logger: where failed authentications are logged.
    public init(backend: any KVBackend, configuration: RESPServerConfiguration = RESPServerConfiguration(),
                clientID: Int64 = 1, acl: ACLStore? = nil,
                logger: Logger = Logger(label: "aegis.resp", factory: { _ in SwiftLogNoOpLogHandler() }),
                pubsub: PubSubHub? = nil) {
        let context = RESPServerContext(configuration: configuration, backend: backend,
                                        metrics: RESPMetrics(factory: NOOPMetricsHandler.instance), acl: acl, logger: logger,
                                        pubsub: pubsub)
        self.init(server: context, clientID: clientID)
    }

    /// Another connection of the same server (shared backend, users and pub/sub hub),
    /// for tests and embedding.
    public func sibling(clientID: Int64) -> RESPSession { RESPSession(server: server, clientID: clientID) }

    /// The user a new (or RESET) connection runs as: `default` when it needs no password.
    func initialUser() -> ACLUser? {
        guard let user = server.acl.user(named: "default"), user.enabled, user.noPassword else { return nil }
        return user
    }

    /// Whether the connection is authenticated.
    var authenticated: Bool { user != nil }

    /// The name of the user the connection runs as, `nil` before `AUTH`.
    public var userName: String? { user?.name }

    /// Re-reads the connection's user after an ACL change: a deleted or disabled user's
    /// connection is no longer authenticated.
    mutating func refreshUser() {
        let generation = server.acl.generation
        guard generation != userGeneration else { return }
        userGeneration = generation
        guard let current = user else { return }
        user = server.acl.user(named: current.name).flatMap { $0.enabled ? $0 : nil }
    }

    /// The protocol version of this connection's replies.
    public var protocolVersion: RESPVersion { version }

    /// Executes `requests` in order and writes their replies, in order, to `out`.
    /// Returns `false` when the connection must be closed after the replies are sent
    /// (`QUIT`).
    public mutating func handle(_ requests: [RESPRequest], into out: inout ByteBuffer) async -> Bool {
        var keepEverything = KeepReplies()
        return await handle(requests, into: &out, output: &keepEverything)
    }

    /// Executes `requests` in order, writing their replies to `out` and offering them
    /// to `output` after every few backend calls, so that a large pipeline is answered
    /// (and its memory released) as it runs. Returns `false` when the connection must
    /// be closed: after the replies in `out` for `QUIT`, at once when `output` says so.
    mutating func handle(_ requests: [RESPRequest], into out: inout ByteBuffer,
                         output: inout some RESPReplyOutput) async -> Bool {
        var queue = ExecutionQueue()
        refreshUser()
        for request in requests {
            if isTransactional(request) {
                await queue.runAll(server.backend, stale: staleReads)
                encode(&queue, into: &out)
                let (reply, keepOpen) = await handleTransactional(request)
                write(reply, into: &out)
                if !keepOpen { return false }
                continue
            }
            switch plan(request) {
            case .reply(let value):
                queue.slots.append(.ready(value))
            case .write(let commands, let kind):
                if !queue.keys.isEmpty { await queue.runReads(server.backend, stale: staleReads) }
                queue.commands.append(contentsOf: commands)
                queue.slots.append(.write(count: commands.count, kind))
            case .read(let keys, let kind):
                if !queue.commands.isEmpty { await queue.runWrites(server.backend) }
                queue.keys.append(contentsOf: keys)
                queue.slots.append(.read(count: keys.count, kind))
            case .deferred(let operation):
                await queue.runAll(server.backend, stale: staleReads)
                queue.slots.append(.ready(await run(operation)))
            case .connection("AEGIS.WATCH", let arguments):
                await queue.runAll(server.backend, stale: staleReads)
                encode(&queue, into: &out)
                switch await prepareWatch(arguments) {
                case .failure(let refusal):
                    write(refusal.value, into: &out)
                case .success(let (confirmation, watch)):
                    // The confirmation (and every reply before it) goes out before the first event.
                    write(confirmation, into: &out)
                    guard await output.flush(&out, replies: &unsentReplies) else { return false }
                    await startWatch(watch)
                }
            case .connection("AEGIS.UNWATCH", _):
                await queue.runAll(server.backend, stale: staleReads)
                encode(&queue, into: &out)
                write(await unwatch(), into: &out)
            case .connection(let name, let arguments) where Self.subscriptionCommands.contains(name):
                await queue.runAll(server.backend, stale: staleReads)
                encode(&queue, into: &out)
                // One command, one reply each channel: counted as one answered command.
                for reply in subscription(name, arguments) { out.writeRESPValue(reply, version: version) }
                unsentReplies += 1
            case .connection(let name, let arguments):
                await queue.runAll(server.backend, stale: staleReads)
                encode(&queue, into: &out)
                let (reply, keepOpen) = await handleConnectionCommand(name, arguments)
                write(reply, into: &out)
                if !keepOpen { return false }
                refreshUser()
            }
            if queue.keys.count >= readChunk || queue.commands.count >= Self.writeChunk || queue.slots.count >= Self.writeChunk {
                await queue.runAll(server.backend, stale: staleReads)
                adaptReadChunk(to: queue)
                encode(&queue, into: &out)
                guard await output.offer(&out, replies: &unsentReplies) else { return false }
            }
        }
        await queue.runAll(server.backend, stale: staleReads)
        adaptReadChunk(to: queue)
        encode(&queue, into: &out)
        return true
    }

    /// The most commands queued for one backend write call (and slots encoded at once).
    static let writeChunk = 256
    /// About how many bytes of values one backend read call should return: the number
    /// of keys per read call is adapted to the values seen, so that a pipeline of reads
    /// of large values holds little at a time and one of small values stays batched.
    static let readChunkBytes = 1 << 20

    /// Sets the keys per read call from the bytes per key of the reads just run.
    private mutating func adaptReadChunk(to queue: ExecutionQueue) {
        guard queue.readResults.count > 0 else { return }
        let perKey = max(1, queue.readBytes / queue.readResults.count)
        readChunk = min(512, max(1, Self.readChunkBytes / perKey))
    }

    /// Writes one reply, counting errors.
    mutating func write(_ reply: RESPValue, into out: inout ByteBuffer) {
        if case .error(let text) = reply { server.metrics.recordError(text) }
        out.writeRESPValue(reply, version: version)
        unsentReplies += 1
    }

    /// Writes the replies of the queue's slots (all executed) and empties it.
    private mutating func encode(_ queue: inout ExecutionQueue, into out: inout ByteBuffer) {
        var nextWrite = 0
        var nextRead = 0
        for slot in queue.slots {
            switch slot {
            case .ready(let value):
                write(value, into: &out)
            case .write(let count, let kind):
                write(kind.reply(queue.writeResults[nextWrite ..< nextWrite + count]), into: &out)
                nextWrite += count
            case .read(let count, let kind):
                write(kind.reply(queue.readResults[nextRead ..< nextRead + count]), into: &out)
                nextRead += count
            }
        }
        queue = ExecutionQueue()
    }
}

/// Where a session hands replies while it runs a batch.
protocol RESPReplyOutput {
    /// Offered the replies encoded so far (`replies` of them, in `buffer`) while more
    /// are coming. It may send them, emptying `buffer` and setting `replies` to 0, or
    /// leave them for later. Returns `false` when the connection must close at once.
    mutating func offer(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool

    /// Sends the replies encoded so far now (before something is pushed after them).
    /// Returns `false` when the connection must close at once.
    mutating func flush(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool
}

/// Keeps every reply in the buffer (for `handle(_:into:)`).
struct KeepReplies: RESPReplyOutput {
    func offer(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool { true }
    func flush(_ buffer: inout ByteBuffer, replies: inout Int) async -> Bool { true }
}

/// What one command turns into.
enum Step {
    /// A reply that needs no backend.
    case reply(RESPValue)
    /// Writes through consensus; batched with neighbouring writes.
    case write([Command], WriteReply)
    /// Reads of keys; batched with neighbouring reads.
    case read([Key], ReadReply)
    /// A backend call that cannot be batched, run in order.
    case deferred(DeferredOperation)
    /// A command that reads or changes the connection's state, run after everything
    /// before it is answered.
    case connection(String, ArraySlice<ByteBuffer>)
}

/// How the results of a command's writes become its reply.
enum WriteReply {
    /// `+OK` (SET, MSET) once every write succeeded.
    case ok
    /// The value before the write, or null (SET … GET).
    case previousValue
    /// A conditional write (NX, IFEQ): on success `+OK` (or the previous value with
    /// GET), when the condition failed null (or the current value with GET).
    case conditional(returnValue: Bool)
    /// The number of keys that existed (DEL, UNLINK).
    case deletedCount
    /// 1 when every key was set, 0 when none was because one existed (MSETNX).
    case setIfNoneExist
    /// The new integer value (INCR family).
    case integer
    /// The reply of a set, hash or TYPE command (and of the keyspace commands whose
    /// reply is one integer or one optional value).
    case collection(CollectionReply)
    /// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2, -1, or the remaining (or absolute) time.
    case timeToLive(milliseconds: Bool, absolute: Bool)
    /// SCAN: [next cursor, keys]; `noKeys` for an unknown TYPE (none match, as in Redis 7.0).
    case scan(noKeys: Bool)
    /// KEYS: the matching keys, or an error naming the limit.
    case keys(limit: Int)
    /// OBJECT REFCOUNT: 1 for a key that exists, else null.
    case refCount
    /// MEMORY USAGE: the estimate for a key that exists, else null.
    case memoryUsage

    func reply(_ results: ArraySlice<Result<CommandResult, BackendError>>) -> RESPValue {
        var deleted: Int64 = 0
        for outcome in results {
            switch outcome {
            case .failure(let error):
                return RESPError.reply(for: error)
            case .success(let result):
                if let error = result.error {
                    if case .compareFailed = error, case .conditional(let returnValue) = self {
                        return returnValue ? result.value.map(RESPValue.bulkString) ?? .null : .null
                    }
                    if case .compareFailed = error, case .setIfNoneExist = self { return .integer(0) }
                    return RESPError.reply(for: error)
                }
                deleted += result.keyCount > 0 ? Int64(result.keyCount) : (result.previousValue != nil ? 1 : 0)
            }
        }
        guard case .success(let last)? = results.last else { return .ok }
        switch self {
        case .ok: return .ok
        case .previousValue: return last.previousValue.map(RESPValue.bulkString) ?? .null
        case .conditional(let returnValue):
            return returnValue ? last.previousValue.map(RESPValue.bulkString) ?? .null : .ok
        case .deletedCount: return .integer(deleted)
        case .setIfNoneExist: return .integer(1)
        case .collection(let reply):
            return reply.reply(last)
        case .timeToLive, .scan, .keys, .refCount, .memoryUsage:
            return keyspaceReply(last)
        case .integer:
            guard let value = last.value, let number = Int64(String(decoding: value, as: UTF8.self)) else {
                return RESPError.notInteger
            }
            return .integer(number)
        }
    }
}

/// How the records read for a command become its reply.
enum ReadReply {
    /// The value or null (GET).
    case value
    /// An array of values or nulls (MGET).
    case values
    /// How many of the keys exist (EXISTS).
    case existsCount
    /// The length of the string, 0 if absent (STRLEN).
    case length

    func reply(_ results: ArraySlice<Result<KeyValue?, BackendError>>) -> RESPValue {
        var records: [KeyValue?] = []
        records.reserveCapacity(results.count)
        for outcome in results {
            switch outcome {
            case .failure(let error): return RESPError.reply(for: error)
            case .success(let record): records.append(record)
            }
        }
        switch self {
        case .value:
            guard let record = records.first ?? nil else { return .null }
            return record.type == .string ? .bulkString(record.value) : RESPError.reply(for: KVError.wrongType)
        case .values:
            // As Redis's MGET: a key of another type reads as null.
            return .array(records.map { record in record.flatMap { $0.type == .string ? .bulkString($0.value) : nil } ?? .null })
        case .existsCount: return .integer(Int64(records.count { $0 != nil }))
        case .length:
            guard let record = records.first ?? nil else { return .integer(0) }
            return record.type == .string ? .integer(Int64(record.value.count)) : RESPError.reply(for: KVError.wrongType)
        }
    }
}

/// Backend calls run one at a time, in order.
enum DeferredOperation {
    /// SET … XX [GET]: write only if the key exists.
    case setIfExists(Key, [UInt8], returnPrevious: Bool)
    /// DBSIZE.
    case count
    /// AEGIS.DIGEST: the local applied index and state digest.
    case digest
    /// INFO with the requested sections (lower-case; empty for the default ones).
    case info([String])
    /// PUBLISH: through the log, then the number of this node's receivers.
    case publish(Key, [UInt8])
    /// AEGIS.SIBLINGS, AEGIS.CONFLICTS, AEGIS.AUDIT (RESPConflictCommands.swift).
    case conflicts(RESPConflictQuery)
}

/// The replies of a batch being assembled, and the backend calls not yet made.
struct ExecutionQueue {
    enum Slot {
        case ready(RESPValue)
        case write(count: Int, WriteReply)
        case read(count: Int, ReadReply)
    }

    var slots: [Slot] = []
    /// Writes queued and not yet sent to the backend.
    var commands: [Command] = []
    /// Keys queued and not yet read.
    var keys: [Key] = []
    /// The outcome of every write sent so far, in order.
    var writeResults: [Result<CommandResult, BackendError>] = []
    /// The outcome of every key read so far, in order.
    var readResults: [Result<KeyValue?, BackendError>] = []
    /// The bytes of the values in `readResults`.
    var readBytes = 0

    mutating func runWrites(_ backend: any KVBackend) async {
        let commands = self.commands
        self.commands = []
        let results = commands.count == 1
            ? [await Result(catching: { () async throws(BackendError) in try await backend.execute(commands[0]) })]
            : await backend.execute(commands)
        writeResults.append(contentsOf: results)
        // A backend that returned too few outcomes must not shift later replies.
        for _ in results.count ..< max(commands.count, results.count) {
            writeResults.append(.failure(.unavailable("the backend returned no outcome for a command")))
        }
    }

    mutating func runReads(_ backend: any KVBackend, stale: Bool) async {
        let keys = self.keys
        self.keys = []
        do {
            let records = try await backend.read(keys, stale: stale)
            for index in keys.indices {
                readResults.append(index < records.count ? .success(records[index])
                                   : .failure(.unavailable("the backend returned no record for a key")))
                if index < records.count { readBytes += records[index]?.value.count ?? 0 }
            }
        } catch {
            readResults.append(contentsOf: repeatElement(.failure(error), count: keys.count))
        }
    }

    mutating func runAll(_ backend: any KVBackend, stale: Bool) async {
        if !commands.isEmpty { await runWrites(backend) }
        if !keys.isEmpty { await runReads(backend, stale: stale) }
    }
}

extension Result where Failure == BackendError {
    /// Captures the outcome of an async throwing call.
    init(catching body: () async throws(BackendError) -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
