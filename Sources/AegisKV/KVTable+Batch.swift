extension KVTable {
    /// The slots holding `keys` (`nil` for a key not stored), found with the memory
    /// accesses of the whole batch overlapped: first every key's home slot is loaded,
    /// then every candidate's record header, each a loop of independent loads the CPU
    /// runs in parallel, instead of one cache miss after another per key. The snapshot
    /// writer walks a large table in key order this way (a random slot and a random
    /// record per key).
    ///
    /// Returns the slot indexes and the record headers (valid where the index is not
    /// `nil`).
    func locate(_ keys: ArraySlice<Key>) -> (indices: [Int?], headers: [RecordHeader]) {
        let count = keys.count
        guard count > 0 else { return ([], []) }
        guard draining == nil else {
            // While the table grows a key may be in either array: look up one by one.
            let indices = keys.map { find($0) }
            return (indices, indices.map { $0.map { header(at: $0) } ?? RecordHeader(from: UnsafeRawBufferPointer(start: nil, count: 0)) })
        }
        let slots = storage.slots, mask = storage.slotCount - 1
        var hashes = [UInt32](repeating: 0, count: count)
        var homes = [TableSlot](repeating: .empty, count: count)
        // 1. Hash every key and load its home slot (independent loads).
        var position = 0
        for key in keys {
            let hash = self.hash(key)
            hashes[position] = hash
            homes[position] = slots[Int(truncatingIfNeeded: hash >> homeShift) & mask]
            position += 1
        }
        // 2. Probe (the home lines are cached now) comparing hash and length only, and
        //    load each candidate's record header (independent loads).
        var candidates = [Int](repeating: -1, count: count)
        var headers = [RecordHeader](repeating: RecordHeader(from: UnsafeRawBufferPointer(start: nil, count: 0)), count: count)
        position = 0
        for key in keys {
            let hash = hashes[position], length = UInt32(truncatingIfNeeded: key.length)
            var index = Int(truncatingIfNeeded: hash >> homeShift) & mask
            var slot = homes[position]
            while slot.keyLength != 0 {
                if slot.hash == hash && slot.keyLength == length {
                    candidates[position] = index
                    headers[position] = RecordHeader(from: arena.bytes(at: slot.location, count: RecordHeader.size))
                    break
                }
                index = (index + 1) & mask
                slot = slots[index]
            }
            position += 1
        }
        // 3. Confirm each candidate's key (its record is cached now); a hash collision
        //    falls back to a full lookup.
        var indices = [Int?](repeating: nil, count: count)
        position = 0
        for key in keys {
            let candidate = candidates[position]
            if candidate >= 0 && keyMatches(key, slots[candidate]) {
                indices[position] = candidate
            } else if candidate >= 0, let index = find(key, hash: hashes[position]) {
                indices[position] = index
                headers[position] = header(at: index)
            }
            position += 1
        }
        return (indices, headers)
    }

    /// Places the slots of keys that are not in the table, all distinct (records written
    /// by `appendRecord`), in the order of their home slots: the array is swept once
    /// instead of hit at random per key. Restoring a 4M-key snapshot spent 2.1 of its
    /// parsing thread's 3.6 s waiting on those random probes (`perf annotate`: one load,
    /// 91 % of `readEntry`'s own time), each a cache and TLB miss into a 128 MB array.
    ///
    /// Grows the table first if needed (at once). The ordering is a counting sort on at
    /// most the top 16 bits of the hash (home slots differ below that only within a few
    /// kilobytes of the array); it uses one more array as large as `pending`.
    mutating func insertSlots(_ pending: [TableSlot]) {
        guard !pending.isEmpty else { return }
        reserveCapacity(count + pending.count)  // also finishes a growth: no `draining` below
        let slots = uniqueSlots(), mask = storage.slotCount - 1, shift = homeShift
        let bits = Swift.min(16, Int(32 - shift))
        let bucketShift = UInt32(32 - bits)
        var starts = [Int](repeating: 0, count: (1 << bits) + 1)
        for slot in pending { starts[Int(truncatingIfNeeded: slot.hash >> bucketShift) + 1] += 1 }
        for bucket in 1 ..< starts.count { starts[bucket] += starts[bucket - 1] }
        var ordered = [TableSlot](repeating: .empty, count: pending.count)
        for slot in pending {
            let bucket = Int(truncatingIfNeeded: slot.hash >> bucketShift)
            ordered[starts[bucket]] = slot
            starts[bucket] += 1
        }
        for slot in ordered {
            var index = Int(truncatingIfNeeded: slot.hash >> shift) & mask
            while slots[index].keyLength != 0 { index = (index + 1) & mask }
            slots[index] = slot
        }
        count += pending.count
    }

    /// The bytes every stored string key adds to a snapshot's entries section (its key
    /// and value, length-prefixed, and its three version varints), summed in slot order:
    /// one sequential pass over the slots, no lookups.
    func snapshotEntryBytes() -> Int {
        var total = 0
        let slotCount = storage.slotCount + (draining?.slotCount ?? 0)
        for index in 0 ..< slotCount {
            let slot = slot(at: index)
            guard slot.keyLength != 0 else { continue }
            let header = RecordHeader(from: arena.bytes(at: slot.location, count: RecordHeader.size))
            total += varintSize(UInt64(slot.keyLength)) + Int(slot.keyLength)
            total += varintSize(UInt64(header.valueLength)) + Int(header.valueLength)
            total += varintSize(header.version) + varintSize(header.createRevision) + varintSize(header.modRevision)
        }
        return total
    }
}
