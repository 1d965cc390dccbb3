/// An observed-remove set with add-wins semantics: a remove deletes only the adds its
/// replica has observed, so an add concurrent with a remove survives.
///
/// Each add is named by a ``Dot``; the set keeps, per element, the dots of its live
/// adds, and a ``CausalContext`` of every add it has seen (so removes need no
/// tombstones per element). Adds and removes return small deltas.
public struct ORSet<Element: CRDTValue>: StateBasedCRDT, Hashable {
    /// The dots of each present element's live adds.
    ///
    /// Invariant: every array is non-empty, sorted, and contained in `context`; no dot
    /// belongs to two elements.
    private var entries: [Element: [Dot]]
    /// Every add this set has seen, live or removed.
    public private(set) var context: CausalContext

    /// Creates an empty set.
    public init() {
        entries = [:]
        context = CausalContext()
    }

    /// The present elements.
    public var elements: Set<Element> { Set(entries.keys) }

    /// The number of present elements.
    public var count: Int { entries.count }

    /// Whether the set is empty.
    public var isEmpty: Bool { entries.isEmpty }

    /// Whether `element` is present.
    public func contains(_ element: Element) -> Bool { entries[element] != nil }

    /// The dots of `element`'s live adds (empty if absent).
    public func dots(of element: Element) -> [Dot] { entries[element] ?? [] }

    /// Adds `element` at `replica` and returns the delta to ship. The new add also
    /// replaces the element's adds this replica has observed.
    @discardableResult
    public mutating func insert(_ element: Element, at replica: ReplicaID) throws(CRDTError) -> ORSet {
        try insert(element, dot: try context.nextDot(for: replica))
    }

    /// Adds `element` under a dot chosen by the caller (for example from a counter that
    /// outlives this set, so a replica never reuses a dot after the set was deleted and
    /// re-created) and returns the delta to ship.
    ///
    /// - Throws: ``CRDTError/Code/invalidArgument`` if this set has already seen `dot`.
    @discardableResult
    public mutating func insert(_ element: Element, dot: Dot) throws(CRDTError) -> ORSet {
        guard !context.contains(dot) else {
            throw CRDTError(.invalidArgument, "dot \(dot) was already used in this set; dots name one add each")
        }
        var delta = ORSet()
        delta.context = CausalContext(dots: dots(of: element) + [dot])
        delta.entries[element] = [dot]
        entries[element] = [dot]
        context.insert(dot)
        return delta
    }

    /// Removes `element` (the adds of it this replica has observed) and returns the
    /// delta to ship; the delta is empty if the element is absent.
    @discardableResult
    public mutating func remove(_ element: Element) -> ORSet {
        var delta = ORSet()
        guard let removed = entries.removeValue(forKey: element) else { return delta }
        delta.context = CausalContext(dots: removed)
        return delta
    }

    /// Removes every present element and returns the delta to ship.
    @discardableResult
    public mutating func removeAll() -> ORSet {
        var delta = ORSet()
        delta.context = CausalContext(dots: entries.values.joined())
        entries = [:]
        return delta
    }

    /// Marks the dots up to `frontier` as seen (see ``CausalContext/fill(through:)``):
    /// the present elements do not change. Returns `true` when the context changed.
    @discardableResult
    public mutating func fillContext(through frontier: [ReplicaID: UInt64]) -> Bool {
        context.fill(through: frontier)
    }

    /// The lattice join: an add survives unless the other side has seen it and
    /// dropped it. Works in place, so merging a small delta allocates little.
    public mutating func merge(_ other: ORSet) {
        // Elements only here lose the dots the other side has seen (and so removed).
        if !other.context.isEmpty {
            var emptied: [Element] = []
            var index = entries.startIndex
            while index != entries.endIndex {
                let (element, mine) = entries[index]
                if mine.contains(where: other.context.contains), other.entries[element] == nil {
                    let kept = mine.filter { !other.context.contains($0) }
                    if kept.isEmpty { emptied.append(element) } else { entries.values[index] = kept }
                }
                entries.formIndex(after: &index)
            }
            for element in emptied { entries[element] = nil }
        }
        // Elements there are joined dot by dot, against this side's context before
        // the merge.
        for (element, theirs) in other.entries {
            let mine = entries[element] ?? []
            let kept = mine == theirs ? mine : Self.join(mine, context, theirs, other.context)
            entries[element] = kept.isEmpty ? nil : kept
        }
        context.merge(other.context)
    }

    /// Joins two dot lists of one element: a dot is kept if both sides have it, or if
    /// one side has it and the other has never seen it. The result is sorted.
    static func join(_ mine: [Dot], _ myContext: CausalContext, _ theirs: [Dot], _ theirContext: CausalContext) -> [Dot] {
        var result = mine.filter { theirs.contains($0) || !theirContext.contains($0) }
        for dot in theirs where !mine.contains(dot) && !myContext.contains(dot) { result.append(dot) }
        return result.sorted()
    }

    public static var encodingTag: EncodingTag { .orSet }

    /// The context, then the elements sorted by encoded bytes, each with its dots.
    public func encodeBody(to writer: inout BinaryWriter) {
        context.encode(to: &writer)
        writer.writeSorted(entries) { writer, dots in writer.writeDots(dots) }
    }

    public init(decodingBody reader: inout BinaryReader) throws(CRDTError) {
        let context = try CausalContext(from: &reader)
        var seen: Set<Dot> = []
        entries = try reader.readSorted("OR-set", minimumEntrySize: 2) { reader throws(CRDTError) in
            let start = reader.position
            let dots = try reader.readDots("OR-set element")
            guard !dots.isEmpty else {
                throw CRDTError(.malformed, "OR-set element at byte \(start) has no dots; absent elements are omitted")
            }
            for dot in dots {
                guard context.contains(dot), seen.insert(dot).inserted else {
                    throw CRDTError(.malformed, "OR-set dot \(dot) at byte \(start) is missing from the causal context or belongs to two elements")
                }
            }
            return dots
        }
        self.context = context
    }
}
