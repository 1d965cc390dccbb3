import AegisRaft
import Testing

@Suite struct MemoryStorageTests {
    @Test func test_memoryStorage_appendTruncatesConflictingSuffix() throws {
        let s = MemoryStorage()
        try s.append([LogEntry(index: 1, term: 1), LogEntry(index: 2, term: 1), LogEntry(index: 3, term: 1)])
        try s.append([LogEntry(index: 2, term: 2)])
        #expect(try s.lastIndex() == 2)
        #expect(try s.term(at: 2) == 2)
    }

    @Test func test_memoryStorage_refusesGap() throws {
        let s = MemoryStorage()
        #expect(throws: RaftError.self) { try s.append([LogEntry(index: 3, term: 1)]) }
        #expect(try s.lastIndex() == 0)
    }

    @Test func test_memoryStorage_compactAndSnapshot() throws {
        let s = MemoryStorage()
        try s.append((1...10).map { LogEntry(index: $0, term: 1) })
        try s.createSnapshot(at: 6, conf: ConfState(voters: ["a"]), data: [1, 2])
        try s.compact(upTo: 6)
        #expect(try s.firstIndex() == 7)
        #expect(throws: RaftError.compacted) { try s.term(at: 5) }
        #expect(try s.term(at: 6) == 1)
        #expect(throws: RaftError.compacted) { try s.entries(from: 6, to: 8, maxBytes: .max) }
        #expect(try s.entries(from: 7, to: 11, maxBytes: .max).count == 4)
        #expect(try s.snapshot().metadata.index == 6)
    }

    @Test func test_memoryStorage_entriesRespectByteLimitButReturnOne() throws {
        let s = MemoryStorage()
        try s.append((1...5).map { LogEntry(index: $0, term: 1, data: [UInt8](repeating: 0, count: 100)) })
        #expect(try s.entries(from: 1, to: 6, maxBytes: 1).count == 1)
        #expect(try s.entries(from: 1, to: 6, maxBytes: 300).count == 2)
    }
}
