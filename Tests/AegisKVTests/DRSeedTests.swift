@testable import AegisKV
import AegisRaft
import Testing

/// Re-seeding a DR standby from its primary's snapshot (`drSeedChunk`): staging, the
/// atomic install with the link's cursor, every refusal, and snapshots taken mid-seed.
@Suite struct DRSeedTests {
    /// A primary with strings, a set, a hash and a deadline, and its snapshot bytes.
    static func primary(keys: Int = 50) -> (machine: StateMachine, data: [UInt8]) {
        var machine = StateMachine()
        var commands: [Command] = (0 ..< keys).map { .set(Key("key\($0)"), bytes("value\($0)")) }
        commands.append(.collection("set", .setAdd([bytes("a"), bytes("b")])))
        commands.append(.collection("hash", .hashSet([FieldValue(bytes("f"), bytes("v"))])))
        commands.append(.expire("key0", .at(milliseconds: 9_000_000_000_000), .always))
        applyAll(&machine, commands)
        return (machine, machine.snapshotData())
    }

    static func chunks(_ data: [UInt8], size: Int, index: UInt64, epoch: UInt64 = 0, source: String = "east")
        -> [Command] {
        stride(from: 0, to: data.count, by: size).map { offset in
            .drSeedChunk(DRSeedChunk(source: source, epoch: epoch, snapshotIndex: index, total: UInt64(data.count),
                                     offset: UInt64(offset), bytes: Array(data[offset ..< min(data.count, offset + size)])))
        }
    }

    @Test func test_seed_stagesChunksThenInstallsStateAndCursorTogether() {
        let (primary, data) = Self.primary()
        var standby = DRStateTests.standby()
        applyAll(&standby, [.set("stale", bytes("x"))])  // refused: read-only; the state stays empty
        let chunks = Self.chunks(data, size: 100, index: primary.appliedIndex)
        #expect(chunks.count > 3)
        let results = applyAll(&standby, Array(chunks.dropLast()))
        #expect(results.allSatisfy { $0.error == nil })
        #expect(results.last?.integer == Int64((chunks.count - 1) * 100))
        // Until the last chunk the standby serves its previous state and cursor.
        #expect(standby.isEmpty && standby.drState.cursors["east"] == nil)
        #expect(standby.seedProgress?.staged == UInt64((chunks.count - 1) * 100))
        let appliedBefore = standby.appliedIndex
        let last = applyAll(&standby, [chunks[chunks.count - 1]])[0]
        #expect(last.error == nil && last.integer == Int64(primary.appliedIndex) && last.keyCount == primary.count)
        #expect(standby.seedProgress == nil)
        #expect(standby.appliedIndex == appliedBefore + 1)
        #expect(standby.drState.role == .standby && standby.drState.primary == "10.0.0.1:6379")
        #expect(standby.drState.cursors["east"]?.lastIndex == primary.appliedIndex)
        #expect(standby.count == primary.count)
        for key in ["key1", "key49", "set", "hash"] {
            #expect(standby.get(Key(key), now: 0) == primary.get(Key(key), now: 0))
            #expect(standby.get(Key(key), now: 0) != nil || key == "set" || key == "hash")
        }
        #expect(standby.deadline(of: "key0") == primary.deadline(of: "key0") && standby.deadline(of: "key0") != nil)
        // The stream then resumes after the snapshot's index.
        let next = DRStateTests.batch(after: primary.appliedIndex, last: primary.appliedIndex + 1,
                                      [DRStateTests.change(primary.appliedIndex + 1, .set("after", bytes("1")))])
        #expect(applyAll(&standby, [next])[0].error == nil)
        #expect(standby.get("after")?.value == bytes("1"))
    }

    @Test func test_seed_outOfOrderChunk_isRefusedAndChangesNothing() {
        let (primary, data) = Self.primary()
        var standby = DRStateTests.standby()
        let chunks = Self.chunks(data, size: 100, index: primary.appliedIndex)
        applyAll(&standby, [chunks[0]])
        let skipped = applyAll(&standby, [chunks[2]])[0]
        #expect(skipped.error == .streamGap(source: "east", cursor: 100, afterIndex: 200))
        #expect(standby.seedProgress?.staged == 100)
        // Another snapshot's chunk at the right offset does not continue this staging either.
        let other = Self.chunks(data, size: 100, index: primary.appliedIndex + 1)
        #expect(applyAll(&standby, [other[1]])[0].error != nil)
        // A chunk at offset 0 starts over.
        let restarted = applyAll(&standby, chunks)
        #expect(restarted.allSatisfy { $0.error == nil } && standby.count == primary.count)
    }

    @Test func test_seed_isRefusedOffAStandbyOrFromAnOlderEpoch() {
        let (primary, data) = Self.primary()
        var notStandby = StateMachine()
        let chunk = Self.chunks(data, size: 100, index: primary.appliedIndex)[0]
        #expect(applyAll(&notStandby, [chunk])[0].error == .notStandby(role: .primary, epoch: 0))
        var standby = DRStateTests.standby(epoch: 3)
        let old = Self.chunks(data, size: 100, index: primary.appliedIndex, epoch: 2)[0]
        #expect(applyAll(&standby, [old])[0].error == .staleEpoch(received: 2, current: 3, primary: "10.0.0.1:6379"))
        #expect(standby.seedProgress == nil)
        // Promotion drops a staging in progress.
        applyAll(&standby, [Self.chunks(data, size: 100, index: primary.appliedIndex, epoch: 3)[0]])
        #expect(standby.seedProgress != nil)
        applyAll(&standby, [.setDRState(DRTransition(epoch: 4, role: .primary))])
        #expect(standby.seedProgress == nil)
    }

    @Test func test_seed_damagedOrMislabelledSnapshot_isRefusedAndStateUnchanged() {
        let (primary, data) = Self.primary()
        var damaged = data
        damaged[damaged.count / 2] ^= 0x40
        var standby = DRStateTests.standby()
        applyAll(&standby, [DRStateTests.batch(after: 0, last: 1, [DRStateTests.change(1, .set("kept", bytes("1")))])])
        let cursor = standby.drState.cursors["east"]
        let bad = applyAll(&standby, Self.chunks(damaged, size: 64, index: primary.appliedIndex))
        #expect(bad.last?.error != nil)
        #expect(standby.seedProgress == nil && standby.get("kept")?.value == bytes("1"))
        #expect(standby.count == 1 && standby.drState.cursors["east"] == cursor)
        // The data says another index than announced.
        let wrong = applyAll(&standby, Self.chunks(data, size: 64, index: primary.appliedIndex + 7))
        #expect(wrong.last?.error != nil && standby.count == 1 && standby.drState.cursors["east"] == cursor)
        // A snapshot no newer than the link's cursor would take the standby back.
        var ahead = DRStateTests.standby()
        applyAll(&ahead, [DRStateTests.batch(after: 0, last: primary.appliedIndex + 5, [])])
        let behind = applyAll(&ahead, Self.chunks(data, size: 4096, index: primary.appliedIndex))[0]
        #expect(behind.error == .streamGap(source: "east", cursor: primary.appliedIndex + 5, afterIndex: primary.appliedIndex))
        #expect(ahead.isEmpty)
    }

    @Test func test_seed_overTheLimit_isRefused() {
        let (primary, data) = Self.primary()
        var limits = StateMachine.Limits()
        limits.maxSeedBytes = data.count - 1
        var standby = StateMachine(limits: limits)
        applyAll(&standby, [.setDRState(DRTransition(epoch: 0, role: .standby))])
        let result = applyAll(&standby, Self.chunks(data, size: 100, index: primary.appliedIndex))[0]
        #expect(result.error != nil && standby.seedProgress == nil)
    }

    @Test func test_snapshotTakenMidSeed_carriesTheStaging() throws {
        let (primary, data) = Self.primary()
        var standby = DRStateTests.standby()
        let chunks = Self.chunks(data, size: 100, index: primary.appliedIndex)
        applyAll(&standby, Array(chunks.prefix(2)))
        var restored = StateMachine()
        try restored.restore(fromChunks: standby.snapshotChunks(chunkSize: 37))
        #expect(restored.seedProgress?.staged == 200)
        #expect(restored.digest() == standby.digest())
        applyAll(&standby, Array(chunks.dropFirst(2)))
        applyAll(&restored, Array(chunks.dropFirst(2)))
        #expect(restored.digest() == standby.digest() && restored.count == primary.count)
        // A damaged section is a malformed snapshot (staged more bytes than the total).
        var tampered = StateMachine()
        let staging = DRSeedStaging(source: "east", epoch: 0, snapshotIndex: 5, total: 3, bytes: [1, 2, 3])
        #expect(throws: KVError.self) { try tampered.restore(from: Self.snapshot(with: staging)) }
    }

    static func snapshot(with staging: DRSeedStaging) -> KVSnapshotReader {
        var machine = DRStateTests.standby()
        machine.drSeed = staging
        var reader = machine.makeSnapshotReader()
        for chunk in machine.snapshotChunks() { try? reader.feed(chunk) }
        return reader
    }

    @Test func test_chunkCodec_roundTripsAndRejectsBadChunks() throws {
        let chunk = DRSeedChunk(source: "east", epoch: 7, snapshotIndex: 42, total: 10, offset: 4, bytes: [1, 2, 3])
        #expect(try Command(decoding: Command.drSeedChunk(chunk).encoded()) == .drSeedChunk(chunk))
        #expect(Command.drSeedChunk(chunk).encodedSize == Command.drSeedChunk(chunk).encoded().count)
        #expect(try DRSeedChunk(decodingBody: chunk.encodedBody()) == chunk)
        var pastEnd = chunk
        pastEnd.offset = 8
        var empty = chunk
        empty.bytes = []
        var noIndex = chunk
        noIndex.snapshotIndex = 0
        var huge = chunk
        huge.total = DRSeedChunk.maxTotalBytes + 1
        for bad in [pastEnd, empty, noIndex, huge] {
            #expect(throws: KVError.self) { try DRSeedChunk(decodingBody: bad.encodedBody()) }
        }
        #expect(throws: KVError.self) { try DRSeedChunk(decodingBody: chunk.encodedBody() + [0]) }
        #expect(throws: KVError.self) { try DRSeedChunk(decodingBody: Array(chunk.encodedBody().dropLast())) }
    }
}

/// Failback (`drRejoin`): a replaced primary becomes a standby that takes nothing from
/// its new primary before a seed, which replaces its state (its divergent writes).
@Suite struct DRRejoinTests {
    static let rejoin = Command.drRejoin(DRTransition(epoch: 2, role: .standby, primary: "10.0.0.2:6379",
                                                      primaryAdmin: "10.0.0.2:8080", resumeSource: "west"))

    @Test func test_rejoin_refusesBatchesUntilTheSeedThenReplacesTheState() {
        // The old primary: fenced at epoch 2, with a write the new primary never received.
        var old = StateMachine()
        applyAll(&old, [.set("divergent", bytes("1")),
                        .setDRState(DRTransition(epoch: 2, role: .fenced, primary: "10.0.0.2:6379"))])
        let r = applyAll(&old, [Self.rejoin])[0]
        #expect(r.error == nil && old.drState.role == .standby && old.drState.pendingSeed == "west")
        // A batch from the new primary before the seed: refused, nothing applied.
        let early = StreamBatch(source: "west", epoch: 2, afterIndex: 0, lastIndex: 1, sourceCommit: 1,
                                changes: [DRStateTests.change(1, .set("x", bytes("1")), source: "west")])
        #expect(applyAll(&old, [.streamBatch(early)])[0].error == .streamGap(source: "west", cursor: 0, afterIndex: 0))
        #expect(old.get("x") == nil)
        // The seed: the new primary's state replaces the old one (the divergent write is gone).
        let (primary, data) = DRSeedTests.primary(keys: 5)
        let seeded = applyAll(&old, DRSeedTests.chunks(data, size: 64, index: primary.appliedIndex, epoch: 2, source: "west"))
        #expect(seeded.allSatisfy { $0.error == nil })
        #expect(old.get("divergent") == nil && old.get("key1")?.value == bytes("value1"))
        #expect(old.drState.pendingSeed == "" && old.drState.cursors["west"]?.lastIndex == primary.appliedIndex)
        #expect(old.drState.role == .standby && old.drState.epoch == 2)
        let next = StreamBatch(source: "west", epoch: 2, afterIndex: primary.appliedIndex, lastIndex: primary.appliedIndex + 1,
                               sourceCommit: primary.appliedIndex + 1,
                               changes: [DRStateTests.change(primary.appliedIndex + 1, .set("x", bytes("1")), source: "west")])
        #expect(applyAll(&old, [.streamBatch(next)])[0].error == nil && old.get("x")?.value == bytes("1"))
    }

    @Test func test_rejoin_needsAnEpochAtLeastTheClustersAndANamedSource() throws {
        var old = StateMachine()
        applyAll(&old, [.setDRState(DRTransition(epoch: 3, role: .fenced))])
        #expect(applyAll(&old, [Self.rejoin])[0].error == .staleEpoch(received: 2, current: 3, primary: ""))
        #expect(old.drState.role == .fenced)
        for bad in [DRTransition(epoch: 4, role: .primary, resumeSource: "west"),
                    DRTransition(epoch: 4, role: .standby),
                    DRTransition(epoch: 4, role: .standby, resumeSource: "west", resumeIndex: 9)] {
            #expect(throws: KVError.self) { try Command(decoding: Command.drRejoin(bad).encoded()) }
            #expect(applyAll(&old, [.drRejoin(bad)])[0].error != nil)
        }
        #expect(try Command(decoding: Self.rejoin.encoded()) == Self.rejoin)
        #expect(old.drState.role == .fenced && old.drState.pendingSeed == "")
    }

    @Test func test_pendingSeed_survivesASnapshotAndOldSectionsReadWithoutIt() throws {
        var old = StateMachine()
        applyAll(&old, [.setDRState(DRTransition(epoch: 2, role: .fenced)), Self.rejoin])
        var restored = StateMachine()
        try restored.restore(fromChunks: old.snapshotChunks())
        #expect(restored.drState == old.drState && restored.drState.pendingSeed == "west")
        // A section written without the field (every state but a pending failback) reads as empty.
        var plain = old.drState
        plain.pendingSeed = ""
        #expect(try DRState(section: Array(plain.snapshotSection())).pendingSeed == "")
        #expect(plain.snapshotSection().count < old.drState.snapshotSection().count)
    }
}
