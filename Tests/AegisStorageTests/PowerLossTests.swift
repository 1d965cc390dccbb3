import AegisRaft
import Foundation
import Testing
@testable import AegisStorage

/// A storage-level power-loss checker: a seeded workload appends entries and hard
/// states through `DiskStorage` on a `SimulatedFileSystem`, makes snapshots and
/// compacts, and the power goes out at a random operation; after each power loss the
/// storage is reopened and every acknowledged entry, hard state and snapshot must be
/// there, unchanged. Recovery may refuse only when the disk corrupted a synced sector
/// on purpose (then the node is replaced: its directory is emptied).
struct PowerLossChecker {
    /// What a run found.
    struct Outcome {
        var violations: [String] = []
        var powerLosses = 0
        var acknowledgedEntries = 0
        var refusals = 0
        /// What the simulated disk did.
        var disk = SimulatedFileSystem.Statistics()
    }

    var configuration = SimulatedFileSystem.Configuration()
    var mutations: Set<SyncMutation> = []
    /// Power losses per seed.
    var powerLosses = 8
    let directory = "/data/node"

    /// The acknowledged state the disk must keep.
    private struct Model {
        var lastIndex: LogIndex = 0
        var commit: LogIndex = 0
        var snapshotIndex: LogIndex = 0
    }

    /// The payload of entry `index`: never zero, and of varying length so that batches
    /// straddle sectors.
    static func payload(_ index: LogIndex) -> [UInt8] {
        let length = 8 + Int(index &* 2_654_435_761 % 300)
        return (0..<length).map { UInt8(truncatingIfNeeded: index &* 31 &+ UInt64($0)) | 1 }
    }

    static func snapshotData(_ index: LogIndex) -> [UInt8] { Array("snapshot at \(index)".utf8) }

    func run(seed: UInt64) -> Outcome {
        let fs = SimulatedFileSystem(configuration: configuration)
        fs.setMutations(mutations)
        var outcome = exercise(fs, seed: seed)
        outcome.disk = fs.statistics
        return outcome
    }

    /// Runs the workload and `powerLosses` power losses on `fs`.
    private func exercise(_ fs: SimulatedFileSystem, seed: UInt64) -> Outcome {
        var random = SplitMix64(seed: seed)
        var outcome = Outcome()
        var options = DiskStorageOptions(segmentSize: 4096, retainedSnapshots: 2)
        options.preallocateSegments = random.next() % 2 == 0
        var model = Model()
        var storage: DiskStorage
        do { storage = try DiskStorage(directory: directory, fileSystem: fs, options: options) } catch {
            outcome.violations.append("seed \(seed): the first open failed: \(error)")
            return outcome
        }
        var damageSeen = 0
        for round in 0..<powerLosses {
            fs.cutPower(afterOperations: 1 + Int(random.next() % 80))
            runWorkload(storage, model: &model, random: &random, acknowledged: &outcome.acknowledgedEntries)
            fs.powerLoss(seed: random.next())
            storage.close()
            outcome.powerLosses += 1
            let stats = fs.statistics
            let damage = stats.damagedFiles.count
            do {
                storage = try DiskStorage(directory: directory, fileSystem: fs, options: options)
            } catch {
                // A refusal must name a file the disk damaged on purpose.
                let damaged = Set(stats.damagedFiles.dropFirst(damageSeen))
                if case let .corruption(report) = error, damaged.contains(report.file) {
                    outcome.refusals += 1
                } else if case let .io(operation, path, _) = error, operation == "read", damaged.contains(path) {
                    outcome.refusals += 1
                } else {
                    outcome.violations.append("seed \(seed) power loss \(round + 1): recovery refused: \(error)")
                    return outcome
                }
                // The node is replaced: removed and added back empty.
                damageSeen = damage
                guard let fresh = replace(fs, options: options, seed: seed, outcome: &outcome) else { return outcome }
                storage = fresh
                model = Model()
                continue
            }
            damageSeen = damage
            let problems = check(storage, model)
            if !problems.isEmpty {
                outcome.violations += problems.map { "seed \(seed) power loss \(round + 1): \($0)" }
                return outcome
            }
            model = Model(lastIndex: (try? storage.lastIndex()) ?? 0, commit: storage.storedHardState.commitIndex,
                          snapshotIndex: (try? storage.snapshot().metadata.index) ?? 0)
        }
        storage.close()
        return outcome
    }

    /// Appends, snapshots and compacts until a call fails (the power went out) or 60 steps.
    private func runWorkload(_ storage: DiskStorage, model: inout Model, random: inout SplitMix64,
                             acknowledged: inout Int) {
        for _ in 0..<60 {
            let action = random.next() % 10
            do {
                if action < 7 || model.lastIndex <= model.snapshotIndex {
                    let count = 1 + Int(random.next() % 5)
                    let first = model.lastIndex + 1
                    let entries = (0..<count).map { k in
                        LogEntry(index: first + LogIndex(k), term: 1, data: Self.payload(first + LogIndex(k)))
                    }
                    let last = first + LogIndex(count) - 1
                    try storage.save(hardState: RaftState(term: 1, commitIndex: last), entries: entries, sync: true)
                    model.lastIndex = last
                    model.commit = last
                    acknowledged += count
                } else if action < 9 {
                    let span = model.lastIndex - model.snapshotIndex
                    let index = model.snapshotIndex + 1 + random.next() % span
                    try storage.createSnapshot(at: index, conf: ConfState(voters: ["n1"]), data: Self.snapshotData(index))
                    model.snapshotIndex = index
                } else {
                    try storage.compact(upTo: model.snapshotIndex)
                }
            } catch {
                return
            }
        }
    }

    /// Every acknowledged entry is there and every entry is unchanged; the hard state and
    /// the snapshot are at least the acknowledged ones.
    private func check(_ storage: DiskStorage, _ model: Model) -> [String] {
        var problems: [String] = []
        do {
            let first = try storage.firstIndex(), last = try storage.lastIndex()
            let snapshot = try storage.snapshot()
            if last < model.lastIndex {
                problems.append("lost acknowledged entries \(last + 1)...\(model.lastIndex)")
            }
            if snapshot.metadata.index < model.snapshotIndex {
                problems.append("lost the acknowledged snapshot at \(model.snapshotIndex) (found \(snapshot.metadata.index))")
            }
            if snapshot.metadata.index > 0 && snapshot.data != Self.snapshotData(snapshot.metadata.index) {
                problems.append("snapshot at \(snapshot.metadata.index) holds the wrong data")
            }
            if first - 1 > snapshot.metadata.index {
                problems.append("entries \(snapshot.metadata.index + 1)..<\(first) are neither in the log nor the snapshot")
            }
            if storage.storedHardState.commitIndex < model.commit {
                problems.append("commit index went back from \(model.commit) to \(storage.storedHardState.commitIndex)")
            }
            if first <= last {
                for entry in try storage.entries(from: first, to: last + 1, maxBytes: .max)
                where entry.term != 1 || entry.data != Self.payload(entry.index) {
                    problems.append("entry \(entry.index) changed")
                }
            }
        } catch {
            problems.append("reading the recovered storage failed: \(error)")
        }
        return problems
    }

    /// Empties the node's directory and opens a fresh storage there.
    private func replace(_ fs: SimulatedFileSystem, options: DiskStorageOptions, seed: UInt64,
                         outcome: inout Outcome) -> DiskStorage? {
        do {
            for name in try fs.list(directory) { try fs.remove(directory + "/" + name) }
            try fs.syncDirectory(directory)
            return try DiskStorage(directory: directory, fileSystem: fs, options: options)
        } catch {
            outcome.violations.append("seed \(seed): replacing the node failed: \(error)")
            return nil
        }
    }
}

@Suite struct PowerLossTests {
    @Test func test_powerLoss_keepsEveryAcknowledgedEntry() {
        let checker = PowerLossChecker()
        var powerLosses = 0, acknowledged = 0, torn = 0, lostWrites = 0, revertedNames = 0
        for seed in UInt64(1)...200 {
            let outcome = checker.run(seed: seed)
            #expect(outcome.violations.isEmpty, "\(outcome.violations)")
            powerLosses += outcome.powerLosses
            acknowledged += outcome.acknowledgedEntries
            torn += outcome.disk.tornWrites
            lostWrites += outcome.disk.lostWrites
            revertedNames += outcome.disk.revertedNames
        }
        print("power-loss checker: 200 seeds, \(powerLosses) power losses, \(acknowledged) acknowledged entries, "
            + "\(lostWrites) unsynced writes lost, \(torn) torn, \(revertedNames) name changes undone")
        #expect(torn > 0 && lostWrites > 0 && revertedNames > 0)
    }

    @Test func test_powerLossWithCorruption_recoversOrRefusesPrecisely() {
        let checker = PowerLossChecker(configuration: .init(bitFlipRate: 0.1, readErrorRate: 0.05))
        var refusals = 0, flips = 0, readErrors = 0
        for seed in UInt64(1)...200 {
            let outcome = checker.run(seed: seed)
            #expect(outcome.violations.isEmpty, "\(outcome.violations)")
            refusals += outcome.refusals
            flips += outcome.disk.bitFlips
            readErrors += outcome.disk.readErrors
        }
        print("power-loss checker with corruption: 200 seeds, \(flips) bit flips, \(readErrors) unreadable sectors, "
            + "\(refusals) refusals naming a damaged file")
        #expect(flips > 0 && readErrors > 0 && refusals > 0)
    }

    @Test(arguments: SyncMutation.allCases)
    func test_withoutSync_checkerFindsLostAcknowledgedData(_ mutation: SyncMutation) {
        let checker = PowerLossChecker(mutations: [mutation])
        var caught: (seed: UInt64, violation: String)?
        for seed in UInt64(1)...200 {
            if let violation = checker.run(seed: seed).violations.first {
                caught = (seed, violation)
                break
            }
        }
        if let caught {
            print("mutation \(mutation.rawValue): caught at seed \(caught.seed): \(caught.violation)")
        }
        #expect(caught != nil, "without \(mutation.rawValue) no seed in 1...200 lost acknowledged data")
    }
}

/// Exploration, not a gate: with name changes that survive a power loss independently
/// (all POSIX promises), prints what the checker finds.
@Suite struct UnorderedNamePowerLossTests {
    @Test func test_unorderedNameChanges_report() {
        let checker = PowerLossChecker(configuration: .init(orderedNameChanges: false))
        var found: [String] = []
        for seed in UInt64(1)...200 {
            found += checker.run(seed: seed).violations
        }
        print("unordered name changes: \(found.count) of 200 seeds refused or lost data")
        for violation in found { print("  \(violation.prefix(160))") }
    }
}
