/// A state-based CRDT (a convergent replicated data type, Shapiro et al. 2011): its
/// states form a join semilattice and ``merge(_:)`` is the join.
///
/// The join is commutative, associative and idempotent, and every update is an
/// inflation (the state after an update is at least the state before), so replicas
/// that have received the same updates in any order, any number of times, hold equal
/// states.
///
/// Types that benefit return a *delta* from their mutators (Almeida et al.,
/// delta-state CRDTs): a small state of the same type which, merged into any replica
/// that has it or not, has the effect of the update. Ship deltas when the full state is
/// large; ship the full state for anti-entropy.
public protocol StateBasedCRDT: Equatable, BinaryEncodable {
    /// Creates the least state (bottom): empty, zero, nothing seen.
    init()

    /// Joins `other` into this state (the least upper bound of both).
    mutating func merge(_ other: Self)
}

extension StateBasedCRDT {
    /// The join of this state and `other`.
    public func merged(with other: Self) -> Self {
        var result = self
        result.merge(other)
        return result
    }

    /// Whether this state is at or below `other` in the lattice, that is, `other`
    /// already includes everything this state knows.
    public func isIncluded(in other: Self) -> Bool { other.merged(with: self) == other }
}
