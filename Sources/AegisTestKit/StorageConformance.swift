public import AegisRaft

/// The conformance suite every `RaftLogStorage` passes: appends, suffix overwrites,
/// compaction, snapshots, bounds and terms, error cases and, when the storage is
/// durable, the same checks after reopening it.
///
/// Plain throwing functions (no test framework): a failed check throws a
/// `StorageConformance.Failure` that names it.
public enum StorageConformance {
    /// A failed check.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The check, for example `"overwrite: entry 5 is gone"`.
        public var check: String
        public var description: String { "storage conformance check failed: \(check)" }
    }

    /// Makes a fresh, empty storage.
    public typealias Make = () throws -> any RaftLogStorage
    /// Closes a storage and opens it again from what it made durable.
    public typealias Reopen = (any RaftLogStorage) throws -> any RaftLogStorage

    /// Every check, each on a fresh storage. With `reopen`, each also checks that what
    /// it wrote survives reopening.
    public static func runAll(make: Make, reopen: Reopen?) throws {
        try checkEmpty(make())
        try checkAppendAndRead(make(), reopen: reopen)
        try checkOverwriteSuffix(make(), reopen: reopen)
        try checkAppendErrors(make())
        try checkHardState(make(), reopen: reopen)
        try checkCreateSnapshotAndCompact(make(), reopen: reopen)
        try checkApplySnapshot(make(), reopen: reopen)
    }

    static func expect(_ condition: Bool, _ check: @autoclosure () -> String) throws {
        if !condition { throw Failure(check: check()) }
    }

    static func expectError(_ expected: RaftError, _ check: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as RaftError {
            try expect(error == expected, "\(check): expected \(expected), got \(error)")
            return
        }
        throw Failure(check: "\(check): expected \(expected), nothing was thrown")
    }

    static func expectSomeError(_ check: String, _ body: () throws -> Void) throws {
        do { try body() } catch { return }
        throw Failure(check: "\(check): expected an error, nothing was thrown")
    }

    static func entries(_ range: ClosedRange<LogIndex>, term: Term) -> [LogEntry] {
        range.map { LogEntry(index: $0, term: term, data: [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 10),
                             timestamp: 1_000 + $0) }
    }

    static func expectBounds(_ s: any RaftLogStorage, first: LogIndex, last: LogIndex, _ step: String) throws {
        let (actualFirst, actualLast) = (try s.firstIndex(), try s.lastIndex())
        try expect(actualFirst == first, "\(step): firstIndex is \(actualFirst), expected \(first)")
        try expect(actualLast == last, "\(step): lastIndex is \(actualLast), expected \(last)")
    }

    static func maybeReopen(_ s: any RaftLogStorage, _ reopen: Reopen?) throws -> any RaftLogStorage {
        guard let reopen else { return s }
        return try reopen(s)
    }

    static func checkEmpty(_ s: any RaftLogStorage) throws {
        try expectBounds(s, first: 1, last: 0, "empty")
        try expect(try s.term(at: 0) == 0, "empty: term(at: 0) is 0")
        try expectError(.unavailable, "empty: term(at: 1)") { _ = try s.term(at: 1) }
        try expect(try s.entries(from: 1, to: 1, maxBytes: .max).isEmpty, "empty: entries(1..<1) is empty")
        try expectError(.compacted, "empty: entries from 0") { _ = try s.entries(from: 0, to: 1, maxBytes: .max) }
        try expectError(.unavailable, "empty: entries past the end") { _ = try s.entries(from: 1, to: 2, maxBytes: .max) }
        try expect(try s.initialState().state.isEmpty, "empty: the hard state is empty")
        try expect(try s.snapshot().isEmpty, "empty: the snapshot is empty")
        try s.compact(upTo: 0)
        try expectError(.unavailable, "empty: compact past the end") { try s.compact(upTo: 1) }
    }

    static func checkAppendAndRead(_ s: any RaftLogStorage, reopen: Reopen?) throws {
        let written = entries(1...10, term: 1) + entries(11...20, term: 2)
        try s.append(Array(written[0..<10]))
        try s.append(Array(written[10...]))
        let s = try maybeReopen(s, reopen)
        try expectBounds(s, first: 1, last: 20, "append")
        try expect(try s.entries(from: 1, to: 21, maxBytes: .max) == written, "append: entries read back intact")
        try expect(try s.term(at: 10) == 1 && s.term(at: 11) == 2, "append: terms at 10 and 11")
        let one = try s.entries(from: 5, to: 21, maxBytes: 0)
        try expect(one.count == 1 && one[0].index == 5, "append: maxBytes 0 still returns one entry")
        let limited = try s.entries(from: 1, to: 21, maxBytes: 3 * written[0].byteSize)
        try expect(limited.count == 3, "append: maxBytes limits the count (got \(limited.count), expected 3)")
        try expectError(.unavailable, "append: entries with low > high") { _ = try s.entries(from: 5, to: 4, maxBytes: .max) }
        try expectError(.unavailable, "append: entries past the end") { _ = try s.entries(from: 1, to: 22, maxBytes: .max) }
        try expectError(.unavailable, "append: term past the end") { _ = try s.term(at: 21) }
        try s.append([])
        try expectBounds(s, first: 1, last: 20, "append of nothing")
    }

    static func checkOverwriteSuffix(_ s: any RaftLogStorage, reopen: Reopen?) throws {
        try s.append(entries(1...10, term: 1))
        try s.append(entries(6...7, term: 3))
        try expectBounds(s, first: 1, last: 7, "overwrite")
        try expectError(.unavailable, "overwrite: entry 8 is gone") { _ = try s.term(at: 8) }
        try s.append(entries(8...12, term: 3))
        try s.append(entries(12...12, term: 4))
        let s = try maybeReopen(s, reopen)
        try expectBounds(s, first: 1, last: 12, "overwrite after reopen")
        let terms = try (1...12).map { try s.term(at: $0) }
        try expect(terms == [1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 4], "overwrite: terms are \(terms)")
        try expect(try s.entries(from: 6, to: 8, maxBytes: .max) == entries(6...7, term: 3), "overwrite: new entries intact")
        try s.append(entries(1...1, term: 5))
        try expectBounds(s, first: 1, last: 1, "overwrite from the first index")
    }

    static func checkAppendErrors(_ s: any RaftLogStorage) throws {
        try s.append(entries(1...5, term: 1))
        try expectSomeError("append with a gap") { try s.append(entries(7...8, term: 1)) }
        var broken = entries(6...8, term: 1)
        broken[1].index = 9
        try expectSomeError("append of non-contiguous entries") { try s.append(broken) }
        try expectBounds(s, first: 1, last: 5, "a refused append changes nothing")
    }

    static func checkHardState(_ s: any RaftLogStorage, reopen: Reopen?) throws {
        try s.append(entries(1...3, term: 2))
        let state = RaftState(term: 7, votedFor: NodeID("node-b"), commitIndex: 3)
        try s.setHardState(RaftState(term: 6, votedFor: NodeID("node-a"), commitIndex: 1))
        try s.setHardState(state)
        let s = try maybeReopen(s, reopen)
        let stored = try s.initialState().state
        try expect(stored == state, "hard state: read back \(stored), expected \(state)")
    }

    static func checkCreateSnapshotAndCompact(_ s: any RaftLogStorage, reopen: Reopen?) throws {
        try s.append(entries(1...10, term: 1) + entries(11...20, term: 2))
        let conf = ConfState(voters: ["a", "b", "c"], learners: ["d"])
        let snap = try s.createSnapshot(at: 12, conf: conf, data: [1, 2, 3])
        try expect(snap.metadata == SnapshotMetadata(index: 12, term: 2, confState: conf), "snapshot: metadata \(snap.metadata)")
        try expectError(.snapshotTemporarilyUnavailable, "snapshot: at or before the current one") {
            try s.createSnapshot(at: 12, conf: conf, data: [])
        }
        try expectError(.unavailable, "snapshot: past the last index") { try s.createSnapshot(at: 21, conf: conf, data: []) }
        try s.compact(upTo: 12)
        try expectBounds(s, first: 13, last: 20, "compact")
        try s.compact(upTo: 5)
        try expectBounds(s, first: 13, last: 20, "compact below the compaction point is a no-op")
        try expectError(.unavailable, "compact: past the end") { try s.compact(upTo: 21) }
        let s = try maybeReopen(s, reopen)
        try expectBounds(s, first: 13, last: 20, "compact after reopen")
        try expect(try s.term(at: 12) == 2, "compact: the term of the compaction point is kept")
        try expectError(.compacted, "compact: term before the compaction point") { _ = try s.term(at: 11) }
        try expectError(.compacted, "compact: entries from the compaction point") {
            _ = try s.entries(from: 12, to: 14, maxBytes: .max)
        }
        try expect(try s.entries(from: 13, to: 21, maxBytes: .max) == entries(13...20, term: 2), "compact: the rest intact")
        try expect(try s.snapshot() == snap, "snapshot: read back")
        try expect(try s.initialState().conf == conf, "snapshot: initialState reports its configuration")
        try s.append(entries(15...16, term: 3))
        try expectBounds(s, first: 13, last: 16, "overwrite after compaction")
        try s.append(entries(10...17, term: 3))
        try expectBounds(s, first: 13, last: 17, "append overlapping the compaction point")
        try expect(try s.term(at: 12) == 2 && s.term(at: 13) == 3,
                   "an append overlapping the compaction point skips the compacted part")
    }

    static func checkApplySnapshot(_ s: any RaftLogStorage, reopen: Reopen?) throws {
        try s.append(entries(1...5, term: 1))
        let conf = ConfState(voters: ["x", "y"])
        let incoming = Snapshot(metadata: SnapshotMetadata(index: 100, term: 9, confState: conf), data: Array("state".utf8))
        try s.applySnapshot(incoming)
        try expectBounds(s, first: 101, last: 100, "apply snapshot")
        try expect(try s.term(at: 100) == 9, "apply snapshot: term at its index")
        try expectError(.compacted, "apply snapshot: entries before it") { _ = try s.term(at: 5) }
        try s.append(entries(101...103, term: 9))
        let older = Snapshot(metadata: SnapshotMetadata(index: 50, term: 9, confState: conf))
        try expectSomeError("apply an older snapshot") { try s.applySnapshot(older) }
        let s = try maybeReopen(s, reopen)
        try expectBounds(s, first: 101, last: 103, "apply snapshot after reopen")
        try expect(try s.snapshot() == incoming, "apply snapshot: read back")
        try expect(try s.initialState().conf == conf, "apply snapshot: configuration")
        try expect(try s.entries(from: 101, to: 104, maxBytes: .max) == entries(101...103, term: 9),
                   "apply snapshot: entries after it intact")
    }
}
