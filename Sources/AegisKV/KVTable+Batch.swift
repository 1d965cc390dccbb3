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
