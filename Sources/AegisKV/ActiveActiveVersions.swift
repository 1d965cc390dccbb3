public import AegisCRDT

// The causal part of a string under a strategy other than `lww` (see
// ActiveActiveStrategies.swift): the concurrent versions (a multi-value register) and
// the causal context, a version vector over origin clusters.
//
// - A local write at cluster C with stamp s: the versions become that one write; the
//   context is the old context, every old version's stamp, and C ↦ s. (A write with a
//   context token, `AEGIS.SETCTX`, keeps the old versions the token does not cover.)
// - The join keeps a version of either side that the other side also holds or has not
//   covered (`context[origin] >= stamp`), and takes the pointwise later context: the
//   dotted version vector join, commutative, associative and idempotent. A cluster's
//   own writes are ordered, so the versions hold at most one per origin cluster: the
//   metadata of a key is bounded by the number of clusters (at most 64, the progress
//   vector's bound), whatever the churn.
// - A state without versions (written under `lww`, or before the table named the
//   prefix) joins as the single version of its register, covering only itself.
//
// Encoding (parts bit 4 of a key state, after the hash counters; only with bit 0):
//
//     varint version count (1...64), then per version in strictly ascending origin
//     order: stamp, live byte (0 deleted, 1 live), value (if live); then the context:
//     varint entry count (1...64), per entry in strictly ascending origin order: stamp
//     (whose replica is the origin). Every version must be covered by the context.
//
// A context token (`AEGIS.SIBLINGS` gives it, `AEGIS.SETCTX` takes it) is the context
// encoding above, in lower-case hexadecimal.

/// One write of a string under a non-`lww` strategy: its stamp (whose replica is the
/// origin cluster) and its value (`nil`: deleted).
public struct ActiveActiveVersion: Sendable, Hashable {
    /// The write's stamp; its replica is the cluster whose client wrote it.
    public var stamp: HLCTimestamp
    /// The value written; `nil` for a delete.
    public var value: [UInt8]?

    /// Creates a version.
    public init(stamp: HLCTimestamp, value: [UInt8]?) {
        self.stamp = stamp
        self.value = value
    }

    /// The cluster whose client wrote it.
    public var origin: ReplicaID { stamp.replica }

    /// The total order the resolver uses: stamp, then deleted before live, then bytes.
    static func precedes(_ a: ActiveActiveVersion, _ b: ActiveActiveVersion) -> Bool {
        if a.stamp != b.stamp { return a.stamp < b.stamp }
        switch (a.value, b.value) {
        case (nil, nil), (_?, nil): return false
        case (nil, _?): return true
        case (let x?, let y?): return x.lexicographicallyPrecedes(y)
        }
    }
}

/// A causal context: per origin cluster, the latest stamp of its writes covered.
public typealias ActiveActiveContext = [ReplicaID: HLCTimestamp]

extension ActiveActiveContext {
    /// `true` when `stamp`'s write is covered.
    func covers(_ stamp: HLCTimestamp) -> Bool {
        guard let seen = self[stamp.replica] else { return false }
        return (seen.physical, seen.logical) >= (stamp.physical, stamp.logical)
    }

    /// Adds `stamp` (pointwise later).
    mutating func include(_ stamp: HLCTimestamp) {
        if !covers(stamp) { self[stamp.replica] = stamp }
    }

    /// The pointwise later context.
    func joined(_ other: ActiveActiveContext) -> ActiveActiveContext {
        var result = self
        for stamp in other.values { result.include(stamp) }
        return result
    }
}

extension ActiveActiveString {
    /// The versions and context the join uses: the stored ones, or the register as the
    /// one version of a state kept without them.
    var causalView: (versions: [ActiveActiveVersion], context: ActiveActiveContext) {
        if let versions { return (versions, context) }
        return ([ActiveActiveVersion(stamp: stamp, value: visibleValue)], [stamp.replica: stamp])
    }

    /// The dotted version vector join of two strings' versions (`nil` when neither has any).
    static func joinedVersions(_ a: ActiveActiveString, _ b: ActiveActiveString)
        -> (versions: [ActiveActiveVersion], context: ActiveActiveContext)? {
        guard a.versions != nil || b.versions != nil else { return nil }
        let (mine, myContext) = a.causalView
        let (theirs, theirContext) = b.causalView
        var kept: [ReplicaID: ActiveActiveVersion] = [:]
        func keep(_ version: ActiveActiveVersion) {
            // Two versions of one origin only come from a malformed peer: the later stays.
            if let current = kept[version.origin], !ActiveActiveVersion.precedes(current, version) { return }
            kept[version.origin] = version
        }
        for version in mine where theirs.contains(version) || !theirContext.covers(version.stamp) { keep(version) }
        for version in theirs where mine.contains(version) || !myContext.covers(version.stamp) { keep(version) }
        let versions = kept.keys.sorted().compactMap { kept[$0] }
        return (versions, myContext.joined(theirContext))
    }
}

extension Array where Element == UInt8 {
    mutating func appendVersions(_ versions: [ActiveActiveVersion], context: ActiveActiveContext) {
        appendVarint(UInt64(versions.count))
        for version in versions.sorted(by: { $0.origin < $1.origin }) {
            appendStamp(version.stamp)
            if let value = version.value {
                append(1)
                appendLengthPrefixed(value)
            } else {
                append(0)
            }
        }
        appendContext(context)
    }

    mutating func appendContext(_ context: ActiveActiveContext) {
        appendVarint(UInt64(context.count))
        for origin in context.keys.sorted() {
            guard let stamp = context[origin] else { continue }  // unreachable: keys come from context
            appendStamp(stamp)
        }
    }
}

extension ByteReader {
    /// Reads a string's versions and context (the encoding above).
    mutating func readVersions() throws(KVError) -> (versions: [ActiveActiveVersion], context: ActiveActiveContext) {
        let count = try readCount("version count", minimumBytesEach: 4)
        guard (1 ... ActiveActiveBatch.maxProgressEntries).contains(count) else {
            throw .malformedCommand("\(count) string versions, not 1...\(ActiveActiveBatch.maxProgressEntries)")
        }
        var versions: [ActiveActiveVersion] = []
        for _ in 0 ..< count {
            let stamp = try readStamp()
            if let previous = versions.last, !(previous.origin < stamp.replica) {
                throw .malformedCommand("string versions are not in strictly ascending origin order")
            }
            switch readByte() {
            case 0: versions.append(ActiveActiveVersion(stamp: stamp, value: nil))
            case 1: versions.append(ActiveActiveVersion(stamp: stamp, value: try readField("version value")))
            default: throw .malformedCommand("missing or unknown version liveness")
            }
        }
        let context = try readContext()
        for version in versions where !context.covers(version.stamp) {
            throw .malformedCommand("a string version of '\(version.origin)' is not covered by its context")
        }
        return (versions, context)
    }

    /// Reads a causal context (1...64 entries in strictly ascending origin order).
    mutating func readContext() throws(KVError) -> ActiveActiveContext {
        let count = try readCount("context entry count", minimumBytesEach: 3)
        guard (1 ... ActiveActiveBatch.maxProgressEntries).contains(count) else {
            throw .malformedCommand("\(count) context entries, not 1...\(ActiveActiveBatch.maxProgressEntries)")
        }
        var context: ActiveActiveContext = [:]
        var previous: ReplicaID?
        for _ in 0 ..< count {
            let stamp = try readStamp()
            if let previous, !(previous < stamp.replica) {
                throw .malformedCommand("context entries are not in strictly ascending origin order")
            }
            previous = stamp.replica
            context[stamp.replica] = stamp
        }
        return context
    }
}

/// A causal context as a client carries it between `AEGIS.SIBLINGS` and `AEGIS.SETCTX`.
public struct ActiveActiveContextToken: Sendable, Hashable, CustomStringConvertible {
    /// The context.
    public var context: ActiveActiveContext

    /// Wraps a context.
    public init(_ context: ActiveActiveContext) { self.context = context }

    /// The longest token text read: 64 entries of at most 300 encoded bytes (a stamp:
    /// two varints and a 255-byte replica), two digits a byte.
    public static let maxTextSize = 2 * 64 * 300

    /// Reads a token's text (lower-case hexadecimal of the context encoding).
    public init(parsing text: String) throws(KVError) {
        guard !text.isEmpty, text.utf8.count <= Self.maxTextSize, let bytes = hexBytes(text) else {
            throw .activeActiveConflict("a context token is an even number of lower-case hexadecimal digits "
                                        + "(at most \(Self.maxTextSize))")
        }
        let decoded = bytes.withUnsafeBytes { raw in
            Result { () throws(KVError) -> ActiveActiveContext in
                var reader = ByteReader(raw)
                let context = try reader.readContext()
                guard reader.remaining == 0 else { throw .malformedCommand("trailing bytes") }
                return context
            }
        }
        do {
            context = try decoded.get()
        } catch {
            throw .activeActiveConflict("the context token does not decode: \(error)")
        }
    }

    /// The token's text.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.appendContext(context)
        return hexString(bytes)
    }
}
