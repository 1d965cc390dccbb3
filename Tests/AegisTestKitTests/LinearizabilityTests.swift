import AegisRaft
import AegisTestKit
import Testing

/// Hand-made good and bad register histories, and generated ones. Builders (`write`,
/// `read`, `cas`: id, value(s), invoke time, completion time) are in
/// LinearizabilityTestSupport.swift; every history is on key 0 unless it says so.
@Suite struct LinearizabilityTests {
    // MARK: Sequential histories

    @Test func test_checker_acceptsSequentialHistory() {
        let history = [
            read(0, nil, 0, 1), write(1, 1, 2, 3), read(2, 1, 4, 5), cas(3, 1, 2, 6, 7),
            read(4, 2, 8, 9), cas(5, 1, 3, swapped: false, 10, 11), write(6, nil, 12, 13), read(7, nil, 14, 15),
        ]
        #expect(verdict(history) == .linearizable)
    }

    @Test func test_checker_rejectsSequentialWrongRead() {
        let history = [write(0, 1, 0, 1), write(1, 2, 2, 3), read(2, 1, 4, 5)]
        let v = violation(history)
        #expect(v?.linearizedPrefix == [0, 1])
        #expect(v?.valueAfterPrefix == 2)
        #expect(v?.blocking == 2)
        #expect(v?.candidates == [2])
    }

    @Test func test_checker_emptyHistoryIsLinearizable() {
        let result = LinearizabilityChecker.check([])
        #expect(result.isLinearizable)
        #expect(result.verdicts.isEmpty)
    }

    // MARK: The subtle cases

    @Test func test_checker_rejectsStaleReadAfterCompletedWrite() {
        // The read starts after the write of 2 completed, yet returns 1.
        let stale = [write(0, 1, 0, 10), write(1, 2, 20, 30), read(2, 1, 40, 50)]
        #expect(violation(stale)?.blocking == 2)
        // Overlapping the second write, the same read is fine.
        let concurrent = [write(0, 1, 0, 10), write(1, 2, 20, 30), read(2, 1, 25, 50)]
        #expect(verdict(concurrent) == .linearizable)
    }

    @Test func test_checker_rejectsReadOfValueNeverWritten() {
        let history = [write(0, 1, 0, 10), write(1, 2, 5, 15), read(2, 7, 0, 20)]
        // Both writes can be placed (in either order); the read never can.
        let v = violation(history)
        #expect(Set(v?.linearizedPrefix ?? []) == [0, 1])
        #expect(v?.blocking == 2)
        #expect(v?.candidates == [2])
    }

    @Test func test_checker_absentReadsOnlyBeforeFirstWrite() {
        #expect(verdict([read(0, nil, 0, 5), write(1, 1, 6, 10)]) == .linearizable)
        #expect(verdict([write(0, 1, 0, 5), read(1, nil, 6, 10)]) != .linearizable)
        #expect(verdict([write(0, 1, 0, 5), read(1, nil, 3, 10)]) == .linearizable)
    }

    @Test func test_checker_rejectsConcurrentWritesSeenInTwoOrders() {
        // Writes of 1 and 2 overlap each other and all four reads. Reader 1 sees 1
        // then 2, reader 2 sees 2 then 1: no single order of the writes explains both.
        let writes = [write(0, 1, 0, 100, client: 0), write(1, 2, 0, 100, client: 1)]
        let readerA = [read(2, 1, 10, 20, client: 2), read(3, 2, 30, 40, client: 2)]
        let readerB = [read(4, 2, 10, 20, client: 3), read(5, 1, 30, 40, client: 3)]
        #expect(verdict(writes + readerA + readerB) != .linearizable)
        #expect(violation(writes + readerA + readerB) != nil)
        // Each reader alone, or both agreeing on the order, is fine.
        #expect(verdict(writes + readerA) == .linearizable)
        #expect(verdict(writes + readerB) == .linearizable)
        let readerBAgrees = [read(4, 1, 10, 20, client: 3), read(5, 2, 30, 40, client: 3)]
        #expect(verdict(writes + readerA + readerBAgrees) == .linearizable)
    }

    @Test func test_checker_treatsTouchingIntervalsAsConcurrent() {
        // The read is invoked at the very time the write completes: either order.
        #expect(verdict([write(0, 1, 0, 10), read(1, nil, 10, 20)]) == .linearizable)
        #expect(verdict([write(0, 1, 0, 10), read(1, nil, 11, 20)]) != .linearizable)
    }

    // MARK: Info and fail

    @Test func test_checker_infoWriteTakesEffectLate() {
        // The info write of 2 is invoked at 5 and seen only at 40, long after its call.
        let history = [write(0, 1, 0, 10), write(1, 2, 5, nil, .info), read(2, 1, 20, 30), read(3, 2, 40, 50)]
        #expect(verdict(history) == .linearizable)
        // But once seen, it cannot be undone.
        #expect(verdict(history + [read(4, 1, 60, 70)]) != .linearizable)
    }

    @Test func test_checker_infoWriteMayNeverTakeEffect() {
        let history = [write(0, 1, 0, 10), write(1, 2, 5, nil, .info), read(2, 1, 20, 30), read(3, 1, 1000, 1001)]
        #expect(verdict(history) == .linearizable)
    }

    @Test func test_checker_infoWriteCannotTakeEffectBeforeItsCall() {
        let history = [write(0, 1, 0, 10), read(1, 2, 20, 30), write(2, 2, 40, nil, .info)]
        #expect(violation(history)?.blocking == 1)
    }

    @Test func test_checker_infoCompletionTimeIsIgnored() {
        // A recorded completion time of an info operation does not bound it.
        let history = [write(0, 2, 0, 5, .info), read(1, 2, 100, 110)]
        #expect(verdict(history) == .linearizable)
    }

    @Test func test_checker_infoReadConstrainsNothing() {
        let history = [write(0, 1, 0, 10), read(1, 99, 20, nil, .info), read(2, 1, 30, 40)]
        #expect(verdict(history) == .linearizable)
    }

    @Test func test_checker_infoCompareAndSetTakesEffectOnlyIfItMatches() {
        let base = [write(0, 1, 0, 10), cas(1, 1, 3, 20, nil, .info)]
        #expect(verdict(base + [read(2, 3, 30, 40)]) == .linearizable)
        #expect(verdict(base + [read(2, 1, 30, 40)]) == .linearizable)
        // Expected 5 never held: the info CAS cannot have written 3.
        let mismatch = [write(0, 1, 0, 10), cas(1, 5, 3, 20, nil, .info), read(2, 3, 30, 40)]
        #expect(verdict(mismatch) != .linearizable)
    }

    @Test func test_checker_ignoresFailedOperations() {
        let history = [write(0, 1, 0, 10), write(1, 9, 20, 30, .fail), cas(2, 1, 8, 20, 30, .fail)]
        #expect(verdict(history + [read(3, 1, 40, 50)]) == .linearizable)
        #expect(verdict(history + [read(3, 9, 40, 50)]) != .linearizable)
        #expect(verdict(history + [read(3, 8, 40, 50)]) != .linearizable)
    }

    @Test func test_checker_okCompareAndSetMismatchMustBeConsistent() {
        // A CAS that reports "comparison did not match" needs another value at its point.
        #expect(verdict([write(0, 1, 0, 10), cas(1, 2, 3, swapped: false, 20, 30), read(2, 1, 40, 50)])
            == .linearizable)
        #expect(verdict([write(0, 1, 0, 10), cas(1, 1, 3, swapped: false, 20, 30)]) != .linearizable)
        // Concurrent writes of 1 and 2: the mismatch on 1 means 2 was written last.
        let writes = [write(0, 1, 0, 10), write(1, 2, 0, 10), cas(2, 1, 5, swapped: false, 20, 30)]
        #expect(verdict(writes + [read(3, 2, 40, 50)]) == .linearizable)
        #expect(verdict(writes + [read(3, 1, 40, 50)]) != .linearizable)
    }

    @Test func test_checker_successfulCompareAndSetNeedsExpectedValue() {
        #expect(verdict([write(0, 1, 0, 10), cas(1, 1, 2, 20, 30), read(2, 2, 40, 50)]) == .linearizable)
        #expect(verdict([write(0, 1, 0, 10), cas(1, 4, 2, 20, 30)]) != .linearizable)
        #expect(verdict([cas(0, nil, 2, 0, 10), read(1, 2, 20, 30)]) == .linearizable)
    }

    // MARK: Concurrency, keys, initial value, budget

    @Test func test_checker_acceptsManyConcurrentWriters() {
        var history: [Op] = (0..<12).map { write($0, UInt64($0 + 1), UInt64($0), 100, client: UInt64($0)) }
        // Readers during the writes see them in one order consistent with every read.
        history += [read(12, 3, 10, 20, client: 20), read(13, 7, 30, 40, client: 20),
                    read(14, 7, 35, 45, client: 21), read(15, 12, 50, 60, client: 21),
                    read(16, 12, 200, 210, client: 20)]
        #expect(verdict(history) == .linearizable)
        // A read after all writes of a value overwritten before a concurrent read saw 12.
        #expect(verdict(history + [read(17, 3, 200, 210, client: 21)]) != .linearizable)
        // A read of a value none of them wrote.
        #expect(verdict(history + [read(17, 13, 200, 210, client: 21)]) != .linearizable)
    }

    @Test func test_checker_checksEachKeySeparately() {
        let history = [
            write(0, 1, 0, 10, key: 1), read(1, 1, 20, 30, key: 1),
            write(2, 1, 0, 10, key: 2), read(3, 5, 20, 30, key: 2),
            read(4, 1, 20, 30, key: 3),
        ]
        let result = LinearizabilityChecker.check(history)
        #expect(result.verdicts[1] == .linearizable)
        #expect(result.violations.map(\.key) == [2, 3])
        #expect(result.violations.first?.blocking == 3)
        #expect(!result.isLinearizable)
        #expect(result.description.contains("key 2"))
    }

    @Test func test_checker_usesInitialValue() {
        let history = [read(0, 0, 0, 10), cas(1, 0, 4, 20, 30), read(2, 4, 40, 50)]
        #expect(verdict(history, initialValue: 0) == .linearizable)
        #expect(verdict(history) != .linearizable)
    }

    @Test func test_checker_reportsUnknownWhenBudgetExhausted() {
        // 10 concurrent writes and a read of a value none wrote: proving it bad means
        // visiting every subset of the writes.
        let history = (0..<10).map { write($0, UInt64($0), 0, 100) } + [read(10, 99, 0, 100)]
        let result = LinearizabilityChecker.check(history, maxStates: 50)
        #expect(result.verdicts[0] == .unknown(.budgetExhausted(statesExplored: 50)))
        #expect(!result.isLinearizable)
        #expect(result.unknownKeys.map(\.key) == [0])
        // With room, the same history is decided.
        let decided = LinearizabilityChecker.check(history, maxStates: 100_000)
        #expect(decided.violations.map(\.key) == [0])
        #expect(decided.statesExplored > 1_000)
    }

    @Test func test_checker_reportsMalformedOperations() {
        let noCompletion = [read(0, nil, 0, nil)]
        #expect(verdict(noCompletion) == .unknown(.malformed(0, "ok without a completion time")))
        let backwards = [write(0, 1, 10, 5)]
        #expect(verdict(backwards) == .unknown(.malformed(0, "completes before it is invoked")))
        // A failed operation is ignored, whatever its times.
        #expect(verdict([write(0, 1, 10, nil, .fail)]) == .linearizable)
    }

    @Test func test_violation_descriptionNamesTheOperations() throws {
        let v = try #require(violation([write(0, 1, 0, 10), write(1, 2, 20, 30), read(2, 1, 40, 50)]))
        #expect(v.description == """
            key 0: after linearizing [#0 #1] (value 2), #2 c0 k0 read=1 ok [40, 50] must take effect next \
            but no candidate fits:
              #2 c0 k0 read=1 ok [40, 50]
            """)
    }

    // MARK: Generated histories

    @Test func test_checker_acceptsGeneratedLinearizableHistories() {
        let generator = LinearizableHistoryGenerator(clients: 4, keys: 2, operationsPerClient: 30)
        for seed in UInt64(1)...40 {
            let result = LinearizabilityChecker.check(generator.generate(seed: seed), maxStates: 200_000)
            #expect(result.isLinearizable, "seed \(seed): \(result)")
        }
    }

    @Test func test_checker_rejectsGeneratedHistoryWithCorruptedRead() {
        let generator = LinearizableHistoryGenerator(clients: 4, keys: 2, operationsPerClient: 30)
        var mutations = 0
        for seed in UInt64(1)...40 {
            let history = generator.generate(seed: seed)
            // A value no write uses (writes use 1...6).
            if let k = history.firstIndex(where: { $0.kind == .read && $0.status == .ok }) {
                var corrupted = history
                corrupted[k].output = 1_000
                let result = LinearizabilityChecker.check(corrupted, maxStates: 200_000)
                #expect(result.violations.map(\.key) == [history[k].key], "seed \(seed)")
                mutations += 1
            }
            // A stale read of the absent initial value after an ok write of the same key
            // completed (writes never write nil).
            let stale = history.indices.first { k in
                history[k].kind == .read && history[k].status == .ok && history.contains {
                    $0.key == history[k].key && $0.kind == .write && $0.status == .ok
                        && ($0.completeTime ?? .max) < history[k].invokeTime
                }
            }
            if let k = stale {
                var corrupted = history
                corrupted[k].output = nil
                let result = LinearizabilityChecker.check(corrupted, maxStates: 200_000)
                #expect(result.violations.map(\.key) == [history[k].key], "seed \(seed)")
                mutations += 1
            }
        }
        #expect(mutations == 80, "every seed yields both mutations")
    }

    @Test func test_checker_decidesThousandOperationHistoryWithinBudget() {
        // 5 clients × 200 operations over 8 keys, as one simulator seed produces.
        let generator = LinearizableHistoryGenerator(clients: 5, keys: 8, operationsPerClient: 200)
        let history = generator.generate(seed: 7)
        #expect(history.count == 1_000)
        let result = LinearizabilityChecker.check(history, maxStates: 100_000)
        #expect(result.isLinearizable, "\(result)")
        #expect(result.verdicts.count == 8)
        // The last read of a busy key, corrupted, is found within the same budget.
        var corrupted = history
        if let k = corrupted.lastIndex(where: { $0.kind == .read && $0.status == .ok }) {
            corrupted[k].output = 1_000
            let bad = LinearizabilityChecker.check(corrupted, maxStates: 100_000)
            #expect(bad.violations.map(\.key) == [corrupted[k].key])
            #expect(bad.unknownKeys.isEmpty)
        } else {
            Issue.record("no ok read generated")
        }
    }
}
