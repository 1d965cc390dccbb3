import AegisRaft
import AegisTestKit
import Testing

/// Each check is fed a hand-made violating history and must report exactly that.
@Suite struct InvariantCheckerTests {
    func entry(_ index: LogIndex, _ term: Term, _ text: String = "") -> LogEntry {
        LogEntry(index: index, term: term, data: Array(text.utf8))
    }

    @Test func test_checker_twoLeadersInOneTerm() {
        var c = InvariantChecker()
        c.observeLeader(node: "a", term: 3, snapshotIndex: 0) { _ in nil }
        c.observeLeader(node: "a", term: 3, snapshotIndex: 0) { _ in nil }
        #expect(c.violations.isEmpty)
        c.observeLeader(node: "b", term: 3, snapshotIndex: 0) { _ in nil }
        #expect(c.violations == [.twoLeaders(term: 3, first: "a", second: "b")])
    }

    @Test func test_checker_logMatchingDifferentContent() {
        var c = InvariantChecker()
        c.observeLogEntry(node: "a", entry: entry(1, 1, "x"), previousTerm: 0)
        c.observeLogEntry(node: "b", entry: entry(1, 1, "x"), previousTerm: 0)
        #expect(c.violations.isEmpty)
        c.observeLogEntry(node: "c", entry: entry(1, 1, "y"), previousTerm: 0)
        #expect(c.violations == [.logMismatch(node: "c", index: 1, term: 1)])
    }

    @Test func test_checker_logMatchingDifferentPredecessor() {
        var c = InvariantChecker()
        c.observeLogEntry(node: "a", entry: entry(5, 3, "x"), previousTerm: 2)
        c.observeLogEntry(node: "b", entry: entry(5, 3, "x"), previousTerm: 1)
        #expect(c.violations == [.logMismatch(node: "b", index: 5, term: 3)])
    }

    @Test func test_checker_leaderWithoutCommittedEntry() {
        var c = InvariantChecker()
        c.observeApplied(node: "a", entry: entry(1, 1, "x"))
        c.observeApplied(node: "a", entry: entry(2, 1, "y"))
        // b's log has only index 1 when it becomes leader of term 2.
        c.observeLeader(node: "b", term: 2, snapshotIndex: 0) { $0 == 1 ? 1 : nil }
        #expect(c.violations == [.leaderMissingCommitted(leader: "b", term: 2, index: 2)])
    }

    @Test func test_checker_differentEntriesAppliedAtOneIndex() {
        var c = InvariantChecker()
        c.observeApplied(node: "a", entry: entry(1, 1, "x"))
        c.observeApplied(node: "b", entry: entry(1, 1, "z"))
        #expect(c.violations.first == .appliedMismatch(node: "b", index: 1))
    }

    @Test func test_checker_committedEntryChanged() {
        var c = InvariantChecker()
        c.observeCommitted(node: "a", entry: entry(4, 2, "x"))
        c.observeCommitted(node: "b", entry: entry(4, 3, "x"))
        #expect(c.violations == [.committedChanged(node: "b", index: 4)])
    }

    @Test func test_checker_committedEntryLostFromDurableLog() {
        var c = InvariantChecker()
        c.observeCommitted(node: "a", entry: entry(1, 1))
        c.observeCommitted(node: "a", entry: entry(2, 1))
        // After a crash, a's durable log claims commit 2 but has lost index 2.
        c.observeDurableLog(node: "a", snapshotIndex: 0, commitIndex: 2) { $0 == 1 ? 1 : nil }
        #expect(c.violations == [.committedChanged(node: "a", index: 2)])
    }

    @Test func test_checker_termDecreased() {
        var c = InvariantChecker()
        c.observeTerm(node: "a", term: 5)
        c.observeTerm(node: "a", term: 5)
        #expect(c.violations.isEmpty)
        c.observeTerm(node: "a", term: 4)
        #expect(c.violations == [.termDecreased(node: "a", from: 5, to: 4)])
    }

    @Test func test_checker_durableTermDecreasedAcrossRestart() {
        var c = InvariantChecker()
        c.observePersistedTerm(node: "a", term: 7)
        c.observeRestart(node: "a", durableTerm: 6)
        #expect(c.violations == [.termDecreased(node: "a", from: 7, to: 6)])
    }
}
