/// A dotted version vector (Preguiça et al., 2012): the clock of one version of one
/// key, made of the `dot` that names the write and the `past` it had seen.
///
/// Unlike a plain vector clock with one entry per client or per server, a dotted
/// version vector names each write exactly, so a server that accepts concurrent writes
/// from clients with the same context keeps both as siblings instead of losing one
/// (the "sibling explosion" and "lost update" problems of per-server clocks).
///
/// Invariant: `past` does not contain `dot`.
public struct DottedVersionVector: Hashable, Sendable, CustomStringConvertible {
    /// The write this version stands for.
    public let dot: Dot
    /// The events the writer had seen when it wrote (the context it supplied).
    public let past: VectorClock

    /// Creates a dotted version vector; throws if `past` already contains `dot`.
    public init(dot: Dot, past: VectorClock) throws(CRDTError) {
        guard !past.contains(dot) else {
            throw CRDTError(.invalidArgument, "the past \(past) already contains the dot \(dot); a write cannot precede itself")
        }
        self.dot = dot
        self.past = past
    }

    /// The version for a new write at `replica`, given the context the writer
    /// supplied and the highest counter `replica` has issued for this key so far.
    public init(writingAt replica: ReplicaID, lastCounter: UInt64, context: VectorClock) throws(CRDTError) {
        let highest = max(lastCounter, context[replica])
        guard highest < UInt64.max else {
            throw CRDTError(.overflow, "the event counter of \(replica) is exhausted; use a new replica ID")
        }
        try self.init(dot: Dot(replica: replica, counter: highest + 1), past: context)
    }

    /// Whether this version's write is included in (was seen by) `clock`.
    public func isIncluded(in clock: VectorClock) -> Bool { clock.contains(dot) }

    /// Whether this version includes (has seen) the event `other`.
    public func contains(_ other: Dot) -> Bool { other == dot || past.contains(other) }

    /// The plain vector clock of this version: its past plus its dot, when the dot
    /// extends the past contiguously (the usual case); otherwise only the past is
    /// exact and the dot is added as the maximum.
    public var clock: VectorClock {
        var entries = past.entries
        entries[dot.replica] = max(past[dot.replica], dot.counter)
        return VectorClock(entries)
    }

    /// How this version relates to `other`: before if `other` has seen this write,
    /// after if this one has seen `other`'s write, equal if they name the same write.
    public func compare(to other: DottedVersionVector) -> CausalOrder {
        if dot == other.dot { return .equal }
        let seenByOther = other.past.contains(dot)
        let seenBySelf = past.contains(other.dot)
        switch (seenBySelf, seenByOther) {
        case (true, false): return .after
        case (false, true): return .before
        default: return .concurrent
        }
    }

    public var description: String { "(\(dot), \(past))" }
}

extension DottedVersionVector: BinaryEncodable {
    public static var encodingTag: EncodingTag { .dottedVersionVector }

    /// The dot, then the past as a vector clock body.
    public func encodeBody(to writer: inout BinaryWriter) {
        writer.writeDot(dot)
        past.encodeBody(to: &writer)
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        let start = reader.position
        let dot = try reader.readDot()
        let past = try VectorClock(decodingBody: &reader)
        guard !past.contains(dot) else {
            throw CRDTError(.malformed, "dotted version vector at byte \(start) has a past that contains its own dot")
        }
        self.dot = dot
        self.past = past
    }
}
