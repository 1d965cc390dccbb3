/// Hashes every simulator event in order (same seed, same hash) and keeps the last
/// few for failure reports, without formatting strings on the hot path.
struct TraceRecorder {
    struct Record {
        var time: UInt64
        var kind: String
        var node: Int
        var a: UInt64
        var b: UInt64
    }

    private(set) var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    private var ring: [Record] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        ring.reserveCapacity(self.capacity)
    }

    private mutating func mix(_ v: UInt64) {
        var v = v
        for _ in 0..<8 {
            hash = (hash ^ (v & 0xff)) &* 0x100_0000_01b3
            v >>= 8
        }
    }

    mutating func record(_ time: UInt64, _ kind: String, _ node: Int, _ a: UInt64 = 0, _ b: UInt64 = 0) {
        mix(time)
        for byte in kind.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        mix(UInt64(node))
        mix(a)
        mix(b)
        let r = Record(time: time, kind: kind, node: node, a: a, b: b)
        if ring.count < capacity { ring.append(r) } else { ring[next] = r }
        next = (next + 1) % capacity
    }

    /// The last events, oldest first.
    func tail() -> [String] {
        let ordered = ring.count < capacity ? ring : Array(ring[next...] + ring[..<next])
        return ordered.map { "t=\($0.time) \($0.kind) n\($0.node + 1) \($0.a) \($0.b)" }
    }
}
