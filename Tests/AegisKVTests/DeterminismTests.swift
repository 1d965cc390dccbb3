@testable import AegisKV
import AegisRaft
import PropertyBased
import Testing

/// A plain reference model of the store, to check the state machine against.
struct ModelStore {
    var values: [Key: (value: [UInt8], version: UInt64)] = [:]

    mutating func apply(_ command: Command) {
        switch command {
        case .get: break
        case .set(let key, let value): write(key, value)
        case .delete(let key): values[key] = nil
        case .compareAndSwap(let key, .value(let expected), let new):
            if values[key]?.value == expected { write(key, new) }
        case .compareAndSwap(let key, .version(let expected), let new):
            if (values[key]?.version ?? 0) == expected { write(key, new) }
        case .increment(let key, let amount):
            let current = values[key].map { parseDecimalInt64($0.value) } ?? 0
            if let current, case (let sum, false) = current.addingReportingOverflow(amount) {
                write(key, Array(String(sum).utf8))
            }
        case .custom: break
        case .setMany(let pairs, let onlyIfNoneExist):
            if onlyIfNoneExist && pairs.contains(where: { values[$0.key] != nil }) { break }
            for pair in pairs { write(pair.key, pair.value) }
        case .deleteMany(let keys):
            for key in keys { values[key] = nil }
        case .getSet(let key, let value): write(key, value)
        case .append(let key, let suffix): write(key, (values[key]?.value ?? []) + suffix)
        case .openSession, .session, .publish:
            break  // `CommandScript` makes none; ClientSessionTests cover them
        case .streamBatch, .setDRState, .drSeedChunk, .drRejoin:
            break  // `CommandScript` makes none; DRStateTests and DRSeedTests cover them
        case .setActiveActive, .activeActiveBatch, .activeActiveCatchUp, .activeActiveConflict, .activeActiveTopology:
            break  // `CommandScript` makes none; ActiveActiveTests and ActiveActiveCatchUpTests cover them
        case .collection, .expire, .persist, .timeToLive, .setWith, .getAndExpire, .purgeExpired, .transaction,
             .keyspace, .rename, .copy, .flushAll:
            break  // `CommandScript` makes none; CollectionTests, ExpiryTests, TransactionTests and
                   // scripts/redis_compat_test.py cover them
        }
    }

    mutating func write(_ key: Key, _ value: [UInt8]) {
        values[key] = (value, (values[key]?.version ?? 0) + 1)
    }
}

@Suite struct DeterminismTests {
    @Test func test_replicas_fedTheSameEntriesHaveTheSameDigest() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 1 ... 400)) { seed, count in
            var script = CommandScript(seed: seed)
            let entries = (1 ... count).map { entry(LogIndex($0), script.command()) }
            // Each replica's table has its own random hash seed, so their memory layouts differ.
            var first = StateMachine()
            var second = StateMachine()
            second.reserveCapacity(1000)
            let firstResults = entries.map { first.apply($0) }
            let secondResults = entries.map { second.apply($0) }
            #expect(firstResults == secondResults)
            #expect(first.digest() == second.digest())
            #expect(first.snapshotData() == second.snapshotData())
        }
    }

    @Test func test_stateMachine_agreesWithAReferenceModel() async {
        await propertyCheck(input: Gen.uint64(in: 0 ... UInt64.max), Gen.int(in: 1 ... 400)) { seed, count in
            var script = CommandScript(seed: seed)
            var machine = StateMachine()
            var model = ModelStore()
            for _ in 0 ..< count {
                let command = script.command()
                machine.apply(entry(machine.appliedIndex + 1, command))
                model.apply(command)
            }
            #expect(machine.count == model.values.count)
            for (key, expected) in model.values {
                let record = machine.get(key)
                #expect(record?.value == expected.value && record?.version == expected.version)
            }
            #expect(machine.range().map(\.key) == model.values.keys.sorted())
        }
    }

    @Test func test_digest_differsWhenTheStateDiffers() {
        var a = StateMachine()
        var b = StateMachine()
        applyAll(&a, [.set("k", bytes("1"))])
        applyAll(&b, [.set("k", bytes("2"))])
        #expect(a.digest() != b.digest())
        var c = StateMachine()
        applyAll(&c, [.set("k", bytes("0")), .set("k", bytes("1"))])  // same value, other version
        var d = StateMachine()
        applyAll(&d, [.set("k", bytes("1")), .get("k")])  // same value and index, other version
        #expect(c.digest() != d.digest())
    }

    @Test func test_interleavedRangeReadsMatchTheModel() {
        var machine = StateMachine()
        var model = ModelStore()
        var script = CommandScript(seed: 42)
        for step in 0 ..< 2000 {
            let command = script.command()
            machine.apply(entry(machine.appliedIndex + 1, command))
            model.apply(command)
            if step % 37 == 0 {
                #expect(machine.range().map(\.key) == model.values.keys.sorted(), "step \(step)")
            }
        }
    }
}
