/// One block of arena memory: a fixed-size byte buffer that never moves.
///
/// A slab is shared between copies of a `ValueArena` (copy-on-write at slab
/// granularity): its bytes are written only while the writing copy holds the only
/// reference (`isKnownUniquelyReferenced`), the same discipline `Array` uses. That is
/// what makes the unchecked `Sendable` conformance sound.
@usableFromInline final class ArenaSlab: @unchecked Sendable {
    /// The first byte. Invariant: `capacity` bytes are allocated from here.
    @usableFromInline let base: UnsafeMutableRawPointer
    /// The number of bytes in the slab.
    @usableFromInline let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(capacity, 1), alignment: 16)
    }

    /// Takes over `base`, `capacity` bytes from `UnsafeMutableRawPointer.allocate(byteCount:alignment: 16)`.
    init(adopting base: UnsafeMutableRawPointer, capacity: Int) {
        self.capacity = capacity
        self.base = base
    }

    deinit { base.deallocate() }
}

/// Hands out memory for full-size arena slabs (`StateMachine.arenaSlabBytes`) made
/// ready ahead of use, for a restore that fills hundreds of them: the first write to a
/// fresh page costs the writer a page fault (on the 2-core VM of the project's
/// measurements about a second per GB: half of parsing a 1.1 GB snapshot), and a source
/// that touches the pages on another thread takes that cost off the parsing thread.
public protocol ArenaSlabSource: AnyObject, Sendable {
    /// A block of `StateMachine.arenaSlabBytes` bytes from
    /// `UnsafeMutableRawPointer.allocate(byteCount:alignment:)` with alignment 16, whose
    /// ownership passes to the caller (the arena frees it); `nil` when none is ready (the
    /// arena then allocates one itself). Called from one thread at a time.
    func takeSlab() -> UnsafeMutableRawPointer?
}

/// Where a record lives in a `ValueArena`: the slab number in the high 32 bits and the
/// byte offset in the slab in the low 32 bits.
@usableFromInline typealias ArenaLocation = UInt64

/// Append-only byte storage for the table's records (values, and the bytes of long
/// keys beyond the 16 kept inline), in slabs of up to `slabSize` bytes (`firstSlabSize`
/// at first).
///
/// Why: one `[UInt8]` per value costs a heap allocation, a 32-byte header and a
/// reference count per key, and scatters values across the heap. Here a new record is
/// a bump of the tail slab's fill mark plus one `memcpy`.
///
/// Space accounting: every slab counts the bytes of its live records. A record that is
/// moved or removed is *released*: its bytes become garbage, and a slab whose live
/// count drops to zero is freed at once. `KVTable` compacts (moves the live records
/// out of mostly-empty slabs) when garbage exceeds a third of the bytes in use, so the
/// arena stays below about 1.5 times the live bytes plus one slab.
///
/// Copies share slabs. A record is overwritten in place, and the tail slab appended
/// to, only while this copy is the slab's sole owner; otherwise writes go to a fresh
/// slab, so no copy ever sees another's writes.
@usableFromInline struct ValueArena: Sendable {
    /// The size of an ordinary slab. Larger records get a slab of their own.
    @usableFromInline static let slabSize = 4 << 20
    /// The size of the smallest tail slab. A new tail slab is as large as the bytes
    /// already in use (at least this, at most `slabSize`), so tail slabs double from
    /// here as the arena grows and a small store does not claim 4 MiB up front.
    @usableFromInline static let firstSlabSize = 64 << 10

    /// The slabs by number; `nil` for a freed number awaiting reuse.
    @usableFromInline var slabs: ContiguousArray<ArenaSlab?> = []
    /// Bytes of live records per slab. Invariant: `live[i] <= used[i]`.
    @usableFromInline var live: ContiguousArray<Int> = []
    /// Bytes handed out per slab (its fill mark). Invariant: `used[i] <= slabs[i].capacity`.
    @usableFromInline var used: ContiguousArray<Int> = []
    /// The slab new records are appended to, or -1 for none.
    @usableFromInline var tail = -1
    /// Freed slab numbers.
    var freeNumbers: [Int] = []
    /// Where full-size slabs come from while set (a restore; see `ArenaSlabSource`).
    var slabSource: (any ArenaSlabSource)?
    /// The sum of `live`.
    @usableFromInline private(set) var liveBytes = 0
    /// The sum of `used`.
    @usableFromInline private(set) var usedBytes = 0

    init() {}

    /// Bytes in use that belong to no live record.
    @usableFromInline var garbageBytes: Int { usedBytes - liveBytes }

    /// `true` when enough garbage has accumulated to be worth a compaction.
    @usableFromInline var needsCompaction: Bool { garbageBytes > 2 * Self.slabSize && garbageBytes * 3 > usedBytes }

    /// The slab number of `location`.
    @inlinable static func slab(of location: ArenaLocation) -> Int { Int(truncatingIfNeeded: location >> 32) }

    /// The byte offset of `location` in its slab.
    @inlinable static func offset(of location: ArenaLocation) -> Int { Int(truncatingIfNeeded: location & 0xFFFF_FFFF) }

    /// The `count` bytes at `location`. `location` and `count` must describe (part of) a
    /// live record of this arena; the range is checked against the slab's fill mark.
    @inlinable func bytes(at location: ArenaLocation, count: Int) -> UnsafeRawBufferPointer {
        guard count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let number = Self.slab(of: location), offset = Self.offset(of: location)
        guard number < slabs.count, let slab = slabs[number], offset + count <= used[number] else {
            return UnsafeRawBufferPointer(start: nil, count: 0)  // unreachable for a valid location
        }
        return UnsafeRawBufferPointer(start: slab.base + offset, count: count)
    }

    /// Reserves `count` bytes for a new live record and returns where they are and a
    /// pointer to write them through (valid until the arena is next changed).
    @inlinable mutating func allocate(_ count: Int) -> (location: ArenaLocation, bytes: UnsafeMutableRawPointer?) {
        guard count > 0 else { return (0, nil) }
        if count > Self.slabSize / 4 {
            // A large record gets a slab of its own; the tail stays where it is.
            let number = openSlab(capacity: count)
            return claim(count, in: number)
        }
        if tail < 0 || used[tail] + count > (slabs[tail]?.capacity ?? 0) || !isKnownUniquelyReferenced(&slabs[tail]) {
            tail = openSlab(capacity: Swift.min(Self.slabSize, Swift.max(Self.firstSlabSize, usedBytes, count)))
        }
        return claim(count, in: tail)
    }

    @inlinable mutating func claim(_ count: Int, in number: Int) -> (location: ArenaLocation, bytes: UnsafeMutableRawPointer?) {
        let offset = used[number]
        used[number] += count
        live[number] += count
        usedBytes += count
        liveBytes += count
        let location = UInt64(truncatingIfNeeded: number) << 32 | UInt64(truncatingIfNeeded: offset)
        return (location, slabs[number].map { $0.base + offset })
    }

    /// A pointer for rewriting the `count` bytes of the live record at `location` in
    /// place, or `nil` if the slab is shared with another copy of the arena.
    @inlinable mutating func writableBytes(at location: ArenaLocation, count: Int) -> UnsafeMutableRawPointer? {
        let number = Self.slab(of: location), offset = Self.offset(of: location)
        guard number < slabs.count, offset + count <= used[number], isKnownUniquelyReferenced(&slabs[number]) else {
            return nil
        }
        return slabs[number].map { $0.base + offset }
    }

    /// Marks the `count` bytes of the record at `location` as garbage, freeing the slab
    /// when nothing live remains in it.
    @inlinable mutating func release(_ location: ArenaLocation, count: Int) {
        guard count > 0 else { return }
        let number = Self.slab(of: location)
        guard number < live.count else { return }
        live[number] -= count
        liveBytes -= count
        if live[number] == 0 { freeSlab(number) }
    }

    /// Frees slab `number`, whose records are all released.
    @usableFromInline mutating func freeSlab(_ number: Int) {
        usedBytes -= used[number]
        used[number] = 0
        live[number] = 0
        slabs[number] = nil
        if tail == number { tail = -1 }
        freeNumbers.append(number)
    }

    /// Allocates a slab and returns its number.
    @usableFromInline mutating func openSlab(capacity: Int) -> Int {
        let prepared = capacity == Self.slabSize ? slabSource?.takeSlab() : nil
        let slab = prepared.map { ArenaSlab(adopting: $0, capacity: capacity) } ?? ArenaSlab(capacity: capacity)
        if let number = freeNumbers.popLast() {
            slabs[number] = slab
            return number
        }
        slabs.append(slab)
        live.append(0)
        used.append(0)
        return slabs.count - 1
    }

    /// The slabs worth emptying in a compaction: those where more than a quarter of the
    /// used bytes are garbage. Closes the tail first, so it can be one of them.
    mutating func compactionVictims() -> [Bool] {
        tail = -1
        return slabs.indices.map { used[$0] > 0 && (used[$0] - live[$0]) * 4 > used[$0] }
    }
}
