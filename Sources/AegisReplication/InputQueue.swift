import Foundation
import AegisKV
import AegisRaft
import AegisTransport

/// A client on this node waiting for the outcome of a write.
struct WriteWaiter: Sendable {
    /// Called exactly once with the outcome.
    var resume: @Sendable (Result<CommandResult, any Error>) -> Void
    /// The tick after which the caller gets `ReplicationError.timeout`.
    var deadline: Int
}

/// A linearizable or stale read.
struct ReadRequest: Sendable {
    /// What a read asks for.
    enum Kind: Sendable {
        /// The records of `keys`.
        case values
        /// The number of keys.
        case count
        /// The state machine's digest and applied index (always local).
        case digest
        /// Committed log entries after an index (always local): for the change stream.
        case log(after: LogIndex, maxCount: Int, maxBytes: Int)
        /// An active-active batch for a peer (always local): see `NodeRuntime.activeActiveBatch`.
        case activeActive(after: LogIndex, maxCount: Int, maxBytes: Int, source: String, sourceTime: UInt64, peer: String?)
        /// A page of the whole active-active state (always local): see `NodeRuntime.activeActiveCatchUpPage`.
        case activeActivePage(after: Key?, maxStates: Int, maxBytes: Int, source: String, sourceTime: UInt64)
        /// The conflict strategies, queue, audit and a key's siblings: see `NodeRuntime.activeActiveConflictReport`.
        case activeActiveConflicts(key: Key?, limit: Int)
    }

    var keys: [Key]
    var kind: Kind
    var continuation: Reply<ReadOutcome>
}

/// A one-shot answer to a waiting caller: a checked continuation in the runtime, a
/// closure in the simulator. Called exactly once.
struct Reply<Value: Sendable>: Sendable {
    let deliver: @Sendable (Result<Value, any Error>) -> Void

    init(_ deliver: @escaping @Sendable (Result<Value, any Error>) -> Void) { self.deliver = deliver }

    /// Bridges a continuation.
    init(_ continuation: CheckedContinuation<Value, any Error>) { deliver = { continuation.resume(with: $0) } }

    func resume(returning value: Value) { deliver(.success(value)) }
    func resume(throwing error: any Error) { deliver(.failure(error)) }
}

extension Reply where Value == Void {
    func resume() { deliver(.success(())) }
}

/// What a read returns: values per key, the key count, or the local digest.
enum ReadOutcome: Sendable {
    case values([KeyValue?])
    case count(Int)
    case digest(appliedIndex: LogIndex, hex: String)
    case log(CommittedEntries)
    case activeActive(ActiveActiveRead)
    case activeActivePage(ActiveActiveCatchUpRead)
    case activeActiveConflicts(ActiveActiveConflictReport)
}

/// A membership change or leadership transfer requested through the runtime.
enum AdminRequest: Sendable {
    case confChange(ConfChange, Reply<Void>)
    case transfer(NodeID?, Reply<Void>)
    /// Start a snapshot now (`NodeRuntime.requestSnapshot`).
    case snapshot(Reply<Void>)
}

/// Everything that reaches the node loop.
enum RuntimeInput: Sendable {
    case messages([Message])
    case tick
    case execute([UInt8], @Sendable (Result<CommandResult, any Error>) -> Void)
    case executeBatch([[UInt8]], @Sendable (Int, Result<CommandResult, any Error>) -> Void)
    case read(ReadRequest, stale: Bool)
    case admin(AdminRequest)
    /// A snapshot taken off the loop finished (see `NodeLoop.takeSnapshot`).
    case snapshotTaken(SnapshotOutcome)
    /// Stop once leadership is handed over (`NodeLoop.beginHandover`).
    case stopGracefully
    case stop
}

/// How a snapshot taken off the loop ended.
struct SnapshotOutcome: Sendable {
    /// The applied index it was taken at.
    var index: LogIndex
    /// Its size in bytes, or why it failed.
    var result: Result<Int, any Error>
    /// Seconds spent serializing and writing it.
    var seconds: Double
}

/// The node loop's inbox: any thread pushes, the loop thread takes everything queued
/// at once (one batch per `Ready`). Once closed, pushes are refused.
///
/// Bounded: client requests (a batch counts each of its commands) beyond
/// `clientLimit` are refused with ``ReplicationError/overloaded``, and peer message
/// batches beyond `messageBatchLimit` are dropped and counted (Raft re-sends what
/// matters). Ticks and `stop` are always taken.
final class InputQueue: @unchecked Sendable {
    /// The outcome of a push.
    enum PushResult {
        case queued
        case closed
        case full
    }

    private let condition = NSCondition()
    private var items: [RuntimeInput] = []
    private var closed = false
    private let clientLimit: Int
    private let messageBatchLimit: Int
    private var clientCount = 0
    private var messageBatches = 0
    /// Peer message batches dropped because the queue held `messageBatchLimit`.
    private(set) var droppedMessageBatches = 0
    /// When the oldest input still queued was pushed (`LoopTimings.now()`).
    private var firstQueuedAt: UInt64 = 0

    init(clientLimit: Int = .max, messageBatchLimit: Int = .max) {
        self.clientLimit = max(1, clientLimit)
        self.messageBatchLimit = max(1, messageBatchLimit)
    }

    /// Queues an input; `false` if the loop has stopped or the input was dropped
    /// because the queue is full.
    @discardableResult
    func push(_ input: RuntimeInput) -> Bool {
        if case .queued = offer(input) { return true }
        return false
    }

    /// Queues an input and says why it was not.
    func offer(_ input: RuntimeInput) -> PushResult {
        let weight = input.clientWeight
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return .closed }
        if weight > 0 {
            guard clientCount == 0 || clientCount + weight <= clientLimit else { return .full }
            clientCount += weight
        } else if case .messages = input {
            guard messageBatches < messageBatchLimit else {
                droppedMessageBatches += 1
                return .full
            }
            messageBatches += 1
        }
        if items.isEmpty { firstQueuedAt = LoopTimings.now() }
        items.append(input)
        condition.signal()
        return .queued
    }

    /// Blocks until inputs are queued; returns them all, and how long the oldest of them
    /// waited in the queue (the loop busy with the previous pass, or not scheduled).
    func takeAll() -> (inputs: [RuntimeInput], waitedNanos: UInt64) {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let waited = LoopTimings.since(firstQueuedAt)
        let batch = items
        items.removeAll(keepingCapacity: true)
        clientCount = 0
        messageBatches = 0
        condition.unlock()
        return (batch, waited)
    }

    /// Refuses further inputs and returns those still queued.
    func close() -> [RuntimeInput] {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        let rest = items
        items = []
        clientCount = 0
        messageBatches = 0
        return rest
    }
}

extension RuntimeInput {
    /// How many client requests this input holds (0 for peer messages, ticks, stop).
    var clientWeight: Int {
        switch self {
        case .execute, .read, .admin: return 1
        case .executeBatch(let commands, _): return max(1, commands.count)
        case .messages, .tick, .stop, .stopGracefully, .snapshotTaken: return 0
        }
    }
}

/// A lock with a scoped helper.
final class NSLockShim: @unchecked Sendable {
    private let lock = NSLock()
    func with<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
