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
    }

    var keys: [Key]
    var kind: Kind
    var continuation: CheckedContinuation<ReadOutcome, any Error>
}

/// What a read returns: values per key, the key count, or the local digest.
enum ReadOutcome: Sendable {
    case values([KeyValue?])
    case count(Int)
    case digest(appliedIndex: LogIndex, hex: String)
}

/// A membership change or leadership transfer requested through the runtime.
enum AdminRequest: Sendable {
    case confChange(ConfChange, CheckedContinuation<Void, any Error>)
    case transfer(NodeID?, CheckedContinuation<Void, any Error>)
}

/// Everything that reaches the node loop.
enum RuntimeInput: Sendable {
    case messages([Message])
    case tick
    case execute([UInt8], @Sendable (Result<CommandResult, any Error>) -> Void)
    case executeBatch([[UInt8]], @Sendable (Int, Result<CommandResult, any Error>) -> Void)
    case read(ReadRequest, stale: Bool)
    case admin(AdminRequest)
    case stop
}

/// The node loop's inbox: any thread pushes, the loop thread takes everything queued
/// at once (one batch per `Ready`). Once closed, pushes are refused.
final class InputQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [RuntimeInput] = []
    private var closed = false

    /// Queues an input; `false` if the loop has stopped.
    @discardableResult
    func push(_ input: RuntimeInput) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        items.append(input)
        condition.signal()
        return true
    }

    /// Blocks until inputs are queued; returns them all.
    func takeAll() -> [RuntimeInput] {
        condition.lock()
        while items.isEmpty { condition.wait() }
        let batch = items
        items.removeAll(keepingCapacity: true)
        condition.unlock()
        return batch
    }

    /// Refuses further inputs and returns those still queued.
    func close() -> [RuntimeInput] {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        let rest = items
        items = []
        return rest
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
