/// The append messages sent to one follower and not yet acknowledged, as a ring
/// buffer of (last index, bytes). Bounds the pipeline in messages and in bytes.
struct Inflights: Sendable {
    private var indexes: [LogIndex]
    private var sizes: [Int]
    private var start = 0
    /// Number of messages in flight. Invariant: `0 <= count <= capacity`.
    private(set) var count = 0
    /// Total bytes in flight.
    private(set) var bytes = 0
    let capacity: Int
    /// 0 means unlimited.
    let maxBytes: Int

    init(capacity: Int, maxBytes: Int) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        indexes = Array(repeating: 0, count: capacity)
        sizes = Array(repeating: 0, count: capacity)
    }

    /// `true` when no further message may be sent.
    var isFull: Bool { count == capacity || (maxBytes != 0 && bytes >= maxBytes) }

    /// Records a message whose last entry is `index`. Indexes must increase.
    mutating func add(_ index: LogIndex, bytes size: Int) {
        guard count < capacity else { return }
        let slot = (start + count) % capacity
        indexes[slot] = index
        sizes[slot] = size
        count += 1
        bytes += size
    }

    /// Frees every message whose last index is `<= index`.
    mutating func freeLE(_ index: LogIndex) {
        while count > 0 && indexes[start] <= index {
            bytes -= sizes[start]
            start = (start + 1) % capacity
            count -= 1
        }
        if count == 0 { start = 0 }
    }

    /// Frees the oldest message.
    mutating func freeFirst() {
        guard count > 0 else { return }
        freeLE(indexes[start])
    }

    /// Frees everything.
    mutating func reset() {
        count = 0
        bytes = 0
        start = 0
    }
}
