import AegisCRDT
import PropertyBased
import Testing

/// Property: an encoding of a random state decodes to it; every truncation, an extra
/// byte, a wrong tag or version are rejected; and any single-byte corruption either is
/// rejected or decodes to a value that re-encodes to exactly the corrupted bytes (so
/// accepted bytes are canonical).
func encodingProperty<Model: ReplicatedModel>(_ model: Model.Type, sourceLocation: SourceLocation = #_sourceLocation) async {
    await propertyCheck(count: propertyCases, input: Gen.uint64(in: .min ... .max), Gen.int(in: 0...40),
                        perform: { seed, steps in
        let (state, _, _) = try Model.sampleStates(seed: seed, steps: steps)
        let bytes = state.encoded()
        #expect(try Model.State(encoded: bytes) == state)
        for length in 0..<bytes.count {
            #expect(throws: CRDTError.self) { try Model.State(encoded: Array(bytes.prefix(length))) }
        }
        #expect(throws: CRDTError.self) { try Model.State(encoded: bytes + [0]) }
        var wrongVersion = bytes
        wrongVersion[1] = 2
        #expect(throws: CRDTError.self) { try Model.State(encoded: wrongVersion) }
        var generator = SplitMix64(seed: seed)
        for _ in 0..<8 {
            var corrupted = bytes
            let position = Int.random(in: 0..<corrupted.count, using: &generator)
            corrupted[position] = UInt8.random(in: 0...255, using: &generator)
            if let decoded = try? Model.State(encoded: corrupted) {
                #expect(decoded.encoded() == corrupted, "accepted bytes are not canonical")
            }
        }
    }, sourceLocation: sourceLocation)
}

@Test func test_vectorClockEncoding_rejectsMalformedBytes() async { await encodingProperty(VectorClockModel.self) }
@Test func test_gCounterEncoding_rejectsMalformedBytes() async { await encodingProperty(GCounterModel.self) }
@Test func test_pnCounterEncoding_rejectsMalformedBytes() async { await encodingProperty(PNCounterModel.self) }
@Test func test_lwwRegisterEncoding_rejectsMalformedBytes() async { await encodingProperty(LWWRegisterModel.self) }
@Test func test_mvRegisterEncoding_rejectsMalformedBytes() async { await encodingProperty(MVRegisterModel.self) }
@Test func test_orSetEncoding_rejectsMalformedBytes() async { await encodingProperty(ORSetModel.self) }
@Test func test_orMapEncoding_rejectsMalformedBytes() async { await encodingProperty(ORMapModel.self) }

/// The code of the error `body` throws; `nil` if it does not throw a `CRDTError`.
private func code(of body: () throws -> Void) -> CRDTError.Code? {
    do { try body() } catch { return (error as? CRDTError)?.code }
    return nil
}

@Test func test_binaryReader_rejectsNonMinimalAndOversizedVarints() throws {
    var overlong = BinaryReader([0x81, 0x00])
    #expect(code { _ = try overlong.readVarint() } == .malformed)
    var tooWide = BinaryReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
    #expect(code { _ = try tooWide.readVarint() } == .malformed)
    var largest = BinaryReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
    #expect(try largest.readVarint() == .max)
}

@Test func test_binaryReader_rejectsCountsLargerThanTheRemainingBytes() {
    var writer = BinaryWriter()
    writer.writeHeader(.orSet, version: 1)
    writer.writeVarint(UInt64(1) << 60)
    #expect(code { _ = try ORSet<Int>(encoded: writer.bytes) } == .malformed)
}

@Test func test_vectorClockEncoding_isSortedAndRejectsUnsortedZeroAndInvalidText() {
    let clock = VectorClock(["b": 2, "a": 1])
    #expect(clock.encoded() == [0x01, 0x01, 0x02, 0x01, 0x61, 0x01, 0x01, 0x62, 0x02])
    let unsorted: [UInt8] = [0x01, 0x01, 0x02, 0x01, 0x62, 0x02, 0x01, 0x61, 0x01]
    #expect(code { _ = try VectorClock(encoded: unsorted) } == .malformed)
    let duplicate: [UInt8] = [0x01, 0x01, 0x02, 0x01, 0x61, 0x01, 0x01, 0x61, 0x02]
    #expect(code { _ = try VectorClock(encoded: duplicate) } == .malformed)
    let zero: [UInt8] = [0x01, 0x01, 0x01, 0x01, 0x61, 0x00]
    #expect(code { _ = try VectorClock(encoded: zero) } == .malformed)
    let invalidUTF8: [UInt8] = [0x01, 0x01, 0x01, 0x01, 0xFF, 0x01]
    #expect(code { _ = try VectorClock(encoded: invalidUTF8) } == .malformed)
}

@Test func test_encoding_rejectsAnotherTypeAndAnUnknownVersion() {
    let counter = GCounter().encoded()
    #expect(code { _ = try PNCounter(encoded: counter) } == .typeMismatch)
    #expect(code { _ = try GCounter(encoded: [EncodingTag.gCounter.rawValue, 9, 0]) } == .unsupportedVersion)
    #expect(code { _ = try ORMap<String, GCounter>(encoded: ORMap<String, PNCounter>().encoded()) } == .typeMismatch)
}

@Test func test_orSetEncoding_rejectsDotsOutsideTheContext() {
    var writer = BinaryWriter()
    writer.writeHeader(.orSet, version: 1)
    VectorClock().encodeBody(to: &writer)  // empty context: compact clock
    writer.writeCount(0)                    // and an empty cloud
    writer.writeCount(1)                    // one element...
    7.encode(to: &writer)
    writer.writeCount(1)                    // ...with a dot the context lacks
    writer.writeReplica("a")
    writer.writeVarint(1)
    #expect(code { _ = try ORSet<Int>(encoded: writer.bytes) } == .malformed)
}

@Test func test_encoding_sameStateEncodesToSameBytesWhateverTheInsertionOrder() throws {
    var forward = ORSet<String>()
    var backward = ORSet<String>()
    let names = (0..<50).map { "element-\($0)" }
    var deltas: [ORSet<String>] = []
    for name in names { deltas.append(try forward.insert(name, at: "a")) }
    for delta in deltas.reversed() { backward.merge(delta) }
    #expect(forward == backward)
    #expect(forward.encoded() == backward.encoded())
}
