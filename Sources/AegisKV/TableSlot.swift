#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One slot of `KVTable`: 16 bytes, no references (so the slot array is copied, grown
/// and freed with `memcpy` and no reference counting). Everything else about the key
/// lives in its `Record` in the arena.
@usableFromInline struct TableSlot: Sendable {
    /// The key's table hash; its top bits are the key's home slot.
    @usableFromInline var hash: UInt32
    /// The key's length in bytes; 0 marks an empty slot (keys are never empty).
    @usableFromInline var keyLength: UInt32
    /// Where the key's record starts in the arena.
    @usableFromInline var location: ArenaLocation

    @inlinable init(hash: UInt32, keyLength: UInt32, location: ArenaLocation) {
        self.hash = hash
        self.keyLength = keyLength
        self.location = location
    }

    /// An empty slot.
    @usableFromInline static let empty = TableSlot(hash: 0, keyLength: 0, location: 0)
}

/// The arena record of a stored key: a fixed header, then the key's bytes, then the
/// value's bytes, then unused room up to `capacity`.
///
///     offset  0  value length      UInt32
///             4  capacity          UInt32 (bytes for key + value; >= their sum)
///             8  version           UInt64 (>= 1)
///            16  create revision   UInt64
///            24  modify revision   UInt64 (>= create revision)
///            32  key bytes, value bytes
///
/// Fields are read and written unaligned in native byte order (the arena is never
/// persisted; snapshots have their own format).
@usableFromInline struct RecordHeader: Sendable {
    @usableFromInline static let size = 32

    @usableFromInline var valueLength: UInt32
    @usableFromInline var capacity: UInt32
    @usableFromInline var version: UInt64
    @usableFromInline var createRevision: UInt64
    @usableFromInline var modRevision: UInt64

    @inlinable init(valueLength: UInt32, capacity: UInt32, version: UInt64, createRevision: UInt64, modRevision: UInt64) {
        self.valueLength = valueLength
        self.capacity = capacity
        self.version = version
        self.createRevision = createRevision
        self.modRevision = modRevision
    }

    /// Reads a header from the first `size` bytes of `raw` (all zero if `raw` is shorter).
    @inlinable init(from raw: UnsafeRawBufferPointer) {
        guard raw.count >= Self.size else {
            self.init(valueLength: 0, capacity: 0, version: 0, createRevision: 0, modRevision: 0)
            return
        }
        self.init(valueLength: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
                  capacity: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
                  version: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                  createRevision: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                  modRevision: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Writes the header to the `size` bytes at `target`.
    @inlinable func write(to target: UnsafeMutableRawPointer) {
        target.storeBytes(of: valueLength, toByteOffset: 0, as: UInt32.self)
        target.storeBytes(of: capacity, toByteOffset: 4, as: UInt32.self)
        target.storeBytes(of: version, toByteOffset: 8, as: UInt64.self)
        target.storeBytes(of: createRevision, toByteOffset: 16, as: UInt64.self)
        target.storeBytes(of: modRevision, toByteOffset: 24, as: UInt64.self)
    }
}

/// The slot array of a `KVTable`: `slotCount` slots aligned to 64 bytes, shared
/// copy-on-write between copies of the table.
///
/// `@unchecked Sendable`: the slots are written only through `KVTable.uniqueSlots()`,
/// which copies the storage first unless this reference is the only one.
@usableFromInline final class SlotStorage: @unchecked Sendable {
    /// Invariant: `slotCount` initialised slots; `slotCount` is a power of two.
    @usableFromInline let slots: UnsafeMutablePointer<TableSlot>
    @usableFromInline let slotCount: Int
    /// `true` if `slots` came from `calloc` (freed with `free`), `false` if from
    /// Swift's allocator (the fallback when `calloc` fails).
    private let fromCalloc: Bool

    /// Allocates `slotCount` empty slots as zeroed memory from `calloc` (an empty slot
    /// is all zeros), so a large array's pages are zeroed by the kernel as they are first
    /// written rather than all at once when the table grows.
    init(slotCount: Int) {
        self.slotCount = slotCount
        let stride = MemoryLayout<TableSlot>.stride
        if let raw = calloc(slotCount, stride) {
            slots = raw.bindMemory(to: TableSlot.self, capacity: slotCount)
            fromCalloc = true
        } else {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: slotCount * stride, alignment: 64)
            slots = raw.bindMemory(to: TableSlot.self, capacity: slotCount)
            slots.initialize(repeating: .empty, count: slotCount)
            fromCalloc = false
        }
    }

    /// A copy with the same slots.
    @usableFromInline init(copying other: SlotStorage) {
        slotCount = other.slotCount
        let raw = UnsafeMutableRawPointer.allocate(byteCount: slotCount * MemoryLayout<TableSlot>.stride, alignment: 64)
        slots = raw.bindMemory(to: TableSlot.self, capacity: slotCount)
        slots.initialize(from: other.slots, count: slotCount)
        fromCalloc = false
    }

    deinit {
        // `TableSlot` is a trivial type: nothing to deinitialize.
        if fromCalloc { free(slots) } else { slots.deallocate() }
    }
}

extension KVTable {
    /// The slots, copied first if another copy of the table shares them.
    @inlinable mutating func uniqueSlots() -> UnsafeMutablePointer<TableSlot> {
        if !isKnownUniquelyReferenced(&storage) { storage = SlotStorage(copying: storage) }
        return storage.slots
    }

    /// The slot array being drained while the table grows (`nil` if none), copied
    /// first if another copy of the table shares it.
    @usableFromInline mutating func uniqueDrainingSlots() -> SlotStorage? {
        guard var old = draining else { return nil }
        draining = nil  // so that `old` holds the only reference this table has
        if !isKnownUniquelyReferenced(&old) { old = SlotStorage(copying: old) }
        draining = old
        return old
    }
}

/// Copies `source` to `target`, which must have room for `source.count` bytes.
@inlinable func copy(_ source: UnsafeRawBufferPointer, to target: UnsafeMutableRawPointer) {
    guard let base = source.baseAddress, source.count > 0 else { return }
    target.copyMemory(from: base, byteCount: source.count)
}
