/// The identity of a replica (a node, or a cluster acting as one writer) in clocks and
/// CRDT metadata.
///
/// Equality, hashing and ordering use the UTF-8 bytes of the identifier, not Unicode
/// canonical equivalence, so two identifiers that are equal always encode to the same
/// bytes and the canonical (sorted) encodings of clocks are well defined.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The textual identifier, for example `"eu-west/node1"`.
    public let rawValue: String

    /// Creates an identifier from its textual form.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// Creates an identifier from a string literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    public static func == (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        lhs.rawValue.utf8.count == rhs.rawValue.utf8.count && lhs.rawValue.utf8.elementsEqual(rhs.rawValue.utf8)
    }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8)
    }

    /// Hashes the string (byte-equal strings are also canonically equal, so equal
    /// identifiers always hash equally).
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
}

/// One event of one replica: the replica's `counter`-th update. Dots name the writes
/// that CRDTs keep (an OR-set element's add, a register's sibling), so a causal context
/// can say precisely which writes a replica has seen.
///
/// Invariant: `counter >= 1` (counter 0 means "no event").
public struct Dot: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The replica that produced the event.
    public let replica: ReplicaID
    /// The event's sequence number at `replica`, starting at 1.
    public let counter: UInt64

    /// Creates a dot.
    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    /// Dots are ordered by replica, then by counter; the order is only used to make
    /// encodings and listings deterministic.
    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        if lhs.replica != rhs.replica { return lhs.replica < rhs.replica }
        return lhs.counter < rhs.counter
    }

    public var description: String { "\(replica.rawValue):\(counter)" }
}
