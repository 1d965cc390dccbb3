/// Records a history as it happens: `invoke…` when a client sends an operation,
/// `complete` when its outcome is known. Operations never completed stay `.info`
/// (unknown outcome), which is what the checker must assume for them.
///
/// Times are whatever the caller uses (monotonic nanoseconds, simulator time); when
/// a time is omitted the history uses its own logical clock, one step per event,
/// never earlier than any time seen so far.
public struct History: Sendable {
    /// The operations in invocation order; `operations[k].id == OperationID(k)`.
    public private(set) var operations: [RegisterOperation] = []
    /// The latest time seen.
    private var clock: UInt64 = 0

    /// Creates an empty history.
    public init() {}

    /// Records the invocation of an operation and returns its identifier. Its
    /// status is `.info` until `complete` is called.
    public mutating func invoke(
        client: UInt64, key: UInt64, kind: RegisterOperation.Kind,
        value: UInt64? = nil, expected: UInt64? = nil, at time: UInt64? = nil
    ) -> OperationID {
        let id = OperationID(operations.count)
        operations.append(RegisterOperation(
            id: id, client: client, key: key, kind: kind, value: value, expected: expected,
            invokeTime: tick(time), completeTime: nil, status: .info))
        return id
    }

    /// Records the invocation of a read.
    public mutating func invokeRead(client: UInt64, key: UInt64, at time: UInt64? = nil) -> OperationID {
        invoke(client: client, key: key, kind: .read, at: time)
    }

    /// Records the invocation of a write of `value` (`nil` makes the key absent).
    public mutating func invokeWrite(client: UInt64, key: UInt64, value: UInt64?, at time: UInt64? = nil) -> OperationID {
        invoke(client: client, key: key, kind: .write, value: value, at: time)
    }

    /// Records the invocation of a compare-and-set from `expected` to `new`.
    public mutating func invokeCompareAndSet(
        client: UInt64, key: UInt64, expected: UInt64?, new: UInt64?, at time: UInt64? = nil
    ) -> OperationID {
        invoke(client: client, key: key, kind: .compareAndSet, value: new, expected: expected, at: time)
    }

    /// Records how an operation ended. `output` is the value an ok read returned;
    /// `swapped` whether an ok compare-and-set matched. Returns `false` (and records
    /// nothing) if `id` is unknown or the operation already completed.
    @discardableResult
    public mutating func complete(
        _ id: OperationID, status: RegisterOperation.Status,
        output: UInt64? = nil, swapped: Bool = true, at time: UInt64? = nil
    ) -> Bool {
        guard operations.indices.contains(id.rawValue), operations[id.rawValue].completeTime == nil else {
            return false
        }
        let now = tick(time)
        operations[id.rawValue].status = status
        operations[id.rawValue].output = output
        operations[id.rawValue].swapped = swapped
        operations[id.rawValue].completeTime = now
        return true
    }

    /// Advances the logical clock to `time`, or by one step.
    private mutating func tick(_ time: UInt64?) -> UInt64 {
        if let time {
            clock = max(clock, time)
            return time
        }
        clock += 1
        return clock
    }
}
