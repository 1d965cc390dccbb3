/// A hybrid logical clock timestamp (Kulkarni et al., 2014): physical time in
/// milliseconds, a logical counter that orders events within one millisecond (or while
/// the wall clock is behind), and the replica that issued it as a final tie-break.
///
/// Timestamps are totally ordered by `(physical, logical, replica)`; no two events of
/// a correct system share a timestamp.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch (the largest physical time seen).
    public let physical: UInt64
    /// Events within `physical` that came before this one.
    public let logical: UInt32
    /// The replica that issued the timestamp.
    public let replica: ReplicaID

    /// Creates a timestamp.
    public init(physical: UInt64, logical: UInt32 = 0, replica: ReplicaID) {
        self.physical = physical
        self.logical = logical
        self.replica = replica
    }

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        if lhs.physical != rhs.physical { return lhs.physical < rhs.physical }
        if lhs.logical != rhs.logical { return lhs.logical < rhs.logical }
        return lhs.replica < rhs.replica
    }

    public var description: String { "\(physical).\(logical)@\(replica.rawValue)" }
}

extension HLCTimestamp: BinaryEncodable {
    public static var encodingTag: EncodingTag { .hlcTimestamp }

    /// Physical and logical as varints, then the replica.
    public func encodeBody(to writer: inout BinaryWriter) {
        writer.writeVarint(physical)
        writer.writeVarint(UInt64(logical))
        writer.writeReplica(replica)
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        let physical = try reader.readVarint()
        let start = reader.position
        guard let logical = UInt32(exactly: try reader.readVarint()) else {
            throw CRDTError(.malformed, "HLC logical counter at byte \(start) does not fit in 32 bits")
        }
        self.init(physical: physical, logical: logical, replica: try reader.readReplica())
    }
}

/// A source of physical time for a hybrid logical clock: milliseconds since the Unix
/// epoch. The shell supplies a wall clock; tests supply a manual one. It may jump
/// backwards; the hybrid clock stays monotonic regardless.
public protocol PhysicalClock: Sendable {
    /// The current time in milliseconds since the Unix epoch.
    func now() -> UInt64
}

/// What a hybrid logical clock does with a remote timestamp further ahead of the local
/// physical time than the maximum skew.
public enum SkewPolicy: Sendable, Hashable {
    /// Refuse it: ``HybridLogicalClock/receive(_:physicalTime:)`` throws
    /// ``CRDTError/Code/clockSkew`` and the clock does not move.
    case reject
    /// Accept it, advancing the clock, and report it in the ``HLCReceipt`` so the
    /// caller can alert.
    case flag
}

/// The result of merging a remote timestamp into a hybrid logical clock.
public struct HLCReceipt: Hashable, Sendable {
    /// The local timestamp of the receive event; greater than both the remote
    /// timestamp and every timestamp this clock issued before.
    public let timestamp: HLCTimestamp
    /// How far (milliseconds) the remote physical time was ahead of local physical
    /// time; 0 if it was not ahead.
    public let remoteLead: UInt64
    /// Whether the lead exceeded the maximum skew (only possible under ``SkewPolicy/flag``).
    public let exceededMaximumSkew: Bool
}

/// A hybrid logical clock: timestamps close to physical time that never go backwards,
/// even when the physical clock does, and that respect causality across replicas.
///
/// The clock takes physical time as an argument (or from a ``PhysicalClock``), so it
/// does no I/O and is deterministic under test.
///
/// Invariant: every timestamp returned is greater than every timestamp returned before.
public struct HybridLogicalClock: Sendable {
    /// The replica whose events this clock stamps.
    public let replica: ReplicaID
    /// The largest lead (milliseconds) a remote physical time may have over local time.
    public let maximumSkew: UInt64
    /// What happens when a remote timestamp exceeds ``maximumSkew``.
    public let skewPolicy: SkewPolicy
    /// The last timestamp issued (physical 0, logical 0 before the first event).
    public private(set) var last: HLCTimestamp

    /// Creates a clock. `maximumSkew` defaults to one minute.
    public init(replica: ReplicaID, maximumSkew: UInt64 = 60_000, skewPolicy: SkewPolicy = .reject) {
        self.replica = replica
        self.maximumSkew = maximumSkew
        self.skewPolicy = skewPolicy
        self.last = HLCTimestamp(physical: 0, logical: 0, replica: replica)
    }

    /// Creates a clock that resumes after `last`, a timestamp it issued before (for
    /// example one restored from a snapshot); `last.replica` must be `replica`.
    public init(replica: ReplicaID, resumingAfter last: HLCTimestamp, maximumSkew: UInt64 = 60_000,
                skewPolicy: SkewPolicy = .reject) {
        self.init(replica: replica, maximumSkew: maximumSkew, skewPolicy: skewPolicy)
        self.last = HLCTimestamp(physical: last.physical, logical: last.logical, replica: replica)
    }

    /// Stamps a local or send event at physical time `physicalTime`.
    public mutating func now(physicalTime: UInt64) throws(CRDTError) -> HLCTimestamp {
        let physical = max(last.physical, physicalTime)
        let logical = physical == last.physical ? try nextLogical(after: last.logical) : 0
        last = HLCTimestamp(physical: physical, logical: logical, replica: replica)
        return last
    }

    /// Stamps a local or send event, reading `clock`.
    public mutating func now(from clock: some PhysicalClock) throws(CRDTError) -> HLCTimestamp {
        try now(physicalTime: clock.now())
    }

    /// Stamps the receipt of a message carrying `remote`, at local physical time
    /// `physicalTime`. Checks the remote lead against ``maximumSkew`` first.
    public mutating func receive(_ remote: HLCTimestamp, physicalTime: UInt64) throws(CRDTError) -> HLCReceipt {
        let lead = remote.physical > physicalTime ? remote.physical - physicalTime : 0
        let exceeded = lead > maximumSkew
        if exceeded && skewPolicy == .reject {
            throw CRDTError(.clockSkew,
                            "timestamp \(remote) from \(remote.replica) is \(lead) ms ahead of local time, more than the maximum skew of \(maximumSkew) ms; check NTP on \(remote.replica) or raise the maximum skew")
        }
        let physical = max(last.physical, remote.physical, physicalTime)
        let logical: UInt32
        switch (physical == last.physical, physical == remote.physical) {
        case (true, true): logical = try nextLogical(after: max(last.logical, remote.logical))
        case (true, false): logical = try nextLogical(after: last.logical)
        case (false, true): logical = try nextLogical(after: remote.logical)
        case (false, false): logical = 0
        }
        last = HLCTimestamp(physical: physical, logical: logical, replica: replica)
        return HLCReceipt(timestamp: last, remoteLead: lead, exceededMaximumSkew: exceeded)
    }

    /// Stamps the receipt of `remote`, reading `clock`.
    public mutating func receive(_ remote: HLCTimestamp, from clock: some PhysicalClock) throws(CRDTError) -> HLCReceipt {
        try receive(remote, physicalTime: clock.now())
    }

    private func nextLogical(after logical: UInt32) throws(CRDTError) -> UInt32 {
        guard logical < UInt32.max else {
            throw CRDTError(.overflow, "HLC logical counter exhausted at physical time \(last.physical); the physical clock is not advancing (or a remote timestamp is far ahead)")
        }
        return logical + 1
    }
}
