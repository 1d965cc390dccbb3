import AegisCRDT

// The encoding of the two version-4 replication commands (see the layout in
// CommandCodec.swift). A stream batch's encoding is also the payload of the change
// stream's wire frames (AegisStream), so the batch layout lives only here.

extension StreamBatch {
    /// Appends the batch's body (after the command's version and type bytes).
    func append(to bytes: inout [UInt8]) {
        bytes.appendLengthPrefixed(Array(source.utf8))
        bytes.appendVarint(epoch)
        bytes.appendVarint(afterIndex)
        bytes.appendVarint(lastIndex)
        bytes.appendVarint(sourceCommit)
        bytes.appendVarint(UInt64(changes.count))
        for change in changes {
            bytes.appendVarint(change.sourceIndex)
            bytes.appendLengthPrefixed(Array(change.origin.rawValue.utf8))
            bytes.appendVarint(change.timestamp.physical)
            bytes.appendVarint(UInt64(change.timestamp.logical))
            bytes.appendVarint(UInt64(change.command.encodedSize))
            bytes.append(contentsOf: change.command.encoded())
        }
    }

    /// The size of `append(to:)`'s output.
    var bodySize: Int {
        func field(_ count: Int) -> Int { varintSize(UInt64(count)) + count }
        var total = field(source.utf8.count) + varintSize(epoch) + varintSize(afterIndex) + varintSize(lastIndex)
            + varintSize(sourceCommit) + varintSize(UInt64(changes.count))
        for change in changes {
            total += varintSize(change.sourceIndex) + field(change.origin.rawValue.utf8.count)
                + varintSize(change.timestamp.physical) + varintSize(UInt64(change.timestamp.logical))
                + field(change.command.encodedSize)
        }
        return total
    }
}

extension DRTransition {
    /// Appends the transition's body (after the command's version and type bytes).
    func append(to bytes: inout [UInt8]) {
        bytes.appendVarint(epoch)
        bytes.append(role.rawValue)
        bytes.appendLengthPrefixed(Array(primary.utf8))
        bytes.appendLengthPrefixed(Array(primaryAdmin.utf8))
        bytes.appendVarint(leaseMillis)
        bytes.appendLengthPrefixed(Array(resumeSource.utf8))
        bytes.appendVarint(resumeIndex)
    }

    /// The size of `append(to:)`'s output.
    var bodySize: Int {
        varintSize(epoch) + 1 + varintSize(UInt64(primary.utf8.count)) + primary.utf8.count
            + varintSize(UInt64(primaryAdmin.utf8.count)) + primaryAdmin.utf8.count + varintSize(leaseMillis)
            + varintSize(UInt64(resumeSource.utf8.count)) + resumeSource.utf8.count + varintSize(resumeIndex)
    }
}

extension ByteReader {
    /// Reads a stream batch's body, checking every rule a well-formed batch follows.
    @usableFromInline mutating func readStreamBatch() throws(KVError) -> StreamBatch {
        let source = try readText("source cluster ID", maxBytes: StreamBatch.maxSourceSize)
        let epoch = try readCommandVarint("batch epoch")
        let after = try readCommandVarint("batch after-index")
        let last = try readCommandVarint("batch last index")
        guard last >= after else { throw .malformedCommand("the batch ends at \(last), before its start \(after)") }
        let commit = try readCommandVarint("source commit index")
        guard commit >= last else { throw .malformedCommand("the source commit \(commit) is before the batch's end \(last)") }
        // Each change takes at least 6 bytes (index, origin, two clock parts, command length).
        let count = try readCount("batch change count", minimumBytesEach: 6)
        var changes: [StreamChange] = []
        changes.reserveCapacity(count)
        var previous = after
        for number in 0 ..< count {
            let index = try readCommandVarint("change index")
            guard index > previous, index <= last else {
                throw .malformedCommand("change \(number) has index \(index), not in \(previous + 1)...\(last) "
                    + "(changes must be in increasing order inside the batch)")
            }
            previous = index
            let origin = try readText("change origin", maxBytes: StreamBatch.maxSourceSize)
            let physical = try readCommandVarint("change clock")
            let logical = try readCommandVarint("change logical clock")
            guard let logical32 = UInt32(exactly: logical) else {
                throw .malformedCommand("change \(number) has logical clock \(logical), over 32 bits")
            }
            let bytes = try readField("change command")
            // Checked before decoding, so nested batches cannot recurse.
            if bytes.count >= 2, let type = CommandType(rawValue: bytes[1]), type == .streamBatch || type == .setDRState {
                throw .malformedCommand("change \(number) is a \(type) command; a batch carries client writes only")
            }
            let command = try Command(decoding: bytes)
            guard command.isWrite, !command.isReplicationControl else {
                throw .malformedCommand("change \(number) is a \(command.type) command; a batch carries client writes only")
            }
            changes.append(StreamChange(sourceIndex: index, origin: ReplicaID(origin),
                                        timestamp: HLCTimestamp(physical: physical, logical: logical32,
                                                                replica: ReplicaID(origin)),
                                        command: command))
        }
        return StreamBatch(source: source, epoch: epoch, afterIndex: after, lastIndex: last, sourceCommit: commit,
                           changes: changes)
    }

    /// Reads a DR transition's body.
    @usableFromInline mutating func readDRTransition() throws(KVError) -> DRTransition {
        let epoch = try readCommandVarint("epoch")
        guard let rawRole = readByte() else { throw .malformedCommand("truncated before the DR role") }
        guard let role = ClusterRole(rawValue: rawRole) else { throw .malformedCommand("unknown DR role \(rawRole)") }
        let primary = try readText("primary address", maxBytes: DRTransition.maxPrimarySize, allowEmpty: true)
        let primaryAdmin = try readText("primary admin address", maxBytes: DRTransition.maxPrimarySize, allowEmpty: true)
        let lease = try readCommandVarint("lease")
        let resumeSource = try readText("resume source", maxBytes: StreamBatch.maxSourceSize, allowEmpty: true)
        let resumeIndex = try readCommandVarint("resume index")
        guard !resumeSource.isEmpty || resumeIndex == 0 else {
            throw .malformedCommand("a resume index \(resumeIndex) without a resume source")
        }
        return DRTransition(epoch: epoch, role: role, primary: primary, primaryAdmin: primaryAdmin, leaseMillis: lease,
                            resumeSource: resumeSource, resumeIndex: resumeIndex)
    }

    /// Reads a length-prefixed UTF-8 text of at most `maxBytes` bytes.
    mutating func readText(_ name: String, maxBytes: Int, allowEmpty: Bool = false) throws(KVError) -> String {
        let bytes = try readField(name)
        guard bytes.count <= maxBytes, allowEmpty || !bytes.isEmpty,
              let text = String(validating: bytes, as: UTF8.self) else {
            throw .malformedCommand("the \(name) must be \(allowEmpty ? 0 : 1) to \(maxBytes) bytes of UTF-8")
        }
        return text
    }
}

extension StreamBatch {
    /// The batch's body alone (no command version or type bytes): the change stream's
    /// frame payload. `init(decodingBody:)` reads it back.
    public func encodedBody() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(bodySize)
        append(to: &bytes)
        return bytes
    }

    /// Decodes a body written by `encodedBody()`, as strictly as a command.
    ///
    /// - Throws: `KVError.malformedCommand` when the bytes are not exactly one valid batch.
    public init(decodingBody bytes: [UInt8]) throws(KVError) {
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> StreamBatch in
                var reader = ByteReader(raw)
                let batch = try reader.readStreamBatch()
                guard reader.remaining == 0 else {
                    throw .malformedCommand("\(reader.remaining) unexpected bytes after the stream batch")
                }
                return batch
            }
        }
        self = try decoded.get()
    }
}
