import AegisCRDT
import Testing

@Test func test_dottedVersionVector_writesWithTheSameContextAreConcurrent() throws {
    // Two clients read the same version, then both write through server "s".
    let context = VectorClock(["s": 1])
    let first = try DottedVersionVector(writingAt: "s", lastCounter: 1, context: context)
    let second = try DottedVersionVector(writingAt: "s", lastCounter: first.dot.counter, context: context)
    #expect(first.dot == Dot(replica: "s", counter: 2))
    #expect(second.dot == Dot(replica: "s", counter: 3))
    #expect(first.compare(to: second) == .concurrent)
    // A plain per-server vector clock would call these ordered and lose the first write.
    #expect(first.clock.compare(to: second.clock) == .before)
}

@Test func test_dottedVersionVector_writeThatSawAnotherIsAfterIt() throws {
    let first = try DottedVersionVector(writingAt: "s", lastCounter: 0, context: VectorClock())
    let second = try DottedVersionVector(writingAt: "t", lastCounter: 0, context: first.clock)
    #expect(second.compare(to: first) == .after)
    #expect(first.compare(to: second) == .before)
    #expect(first.compare(to: first) == .equal)
    #expect(second.contains(first.dot))
}

@Test func test_dottedVersionVector_pastContainingItsOwnDotIsRejected() throws {
    #expect(throws: CRDTError.self) {
        try DottedVersionVector(dot: Dot(replica: "s", counter: 2), past: VectorClock(["s": 2]))
    }
    var writer = BinaryWriter()
    writer.writeHeader(.dottedVersionVector, version: 1)
    writer.writeReplica("s")
    writer.writeVarint(2)
    VectorClock(["s": 3]).encodeBody(to: &writer)
    #expect(throws: CRDTError.self) { try DottedVersionVector(encoded: writer.bytes) }
}
