import AegisRaft
@testable import AegisTransport
import NIOCore
import Testing

@Suite struct PeerStatusCodecTests {
    func body(term: UInt64 = 3, commit: UInt64 = 10, applied: UInt64 = 9, last: UInt64 = 12,
              pairs: [(String, UInt64)], count: UInt32? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(term)
        buffer.writeInteger(commit)
        buffer.writeInteger(applied)
        buffer.writeInteger(last)
        buffer.writeInteger(count ?? UInt32(pairs.count))
        for (id, match) in pairs {
            buffer.writeLengthPrefixedString(id)
            buffer.writeInteger(match)
        }
        return buffer
    }

    @Test func test_peerStatus_roundTripsWithTheLeadersProgress() throws {
        let report = PeerStatusReport(term: 7, commitIndex: 100, appliedIndex: 99, lastIndex: 104,
                                      progress: ["n1": 104, "n2": 100, "n3": 42])
        var buffer = ByteBuffer()
        buffer.writeMessageFrame(Message(from: "n1", to: "n2", payload: .peerStatus(report)))
        let decoded = try buffer.readMessageFrame()
        #expect(decoded == Message(from: "n1", to: "n2", payload: .peerStatus(report)))
        #expect(decoded?.type == .peerStatus && decoded?.raftMessage == nil)
    }

    @Test func test_peerStatus_refusesDuplicateNodesTooManyPairsAndAppliedBeyondCommit() throws {
        var good = body(pairs: [("n1", 5), ("n2", 6)])
        #expect(try good.readPeerStatusReport().progress == ["n1": 5, "n2": 6])
        var duplicate = body(pairs: [("n1", 5), ("n1", 6)])
        #expect(throws: CodecError.self) { try duplicate.readPeerStatusReport() }
        var beyond = body(commit: 4, applied: 5, pairs: [])
        #expect(throws: CodecError.self) { try beyond.readPeerStatusReport() }
        // A count the bytes cannot hold is refused before anything is allocated.
        var lying = body(pairs: [("n1", 5)], count: 4_000_000)
        #expect(throws: CodecError.self) { try lying.readPeerStatusReport() }
        let many = (0 ... PeerStatusReport.maxProgressEntries).map { ("n\($0)", UInt64($0)) }
        var tooMany = body(pairs: many)
        #expect(throws: CodecError.self) { try tooMany.readPeerStatusReport() }
        var truncated = body(pairs: [("n1", 5)])
        truncated.moveWriterIndex(to: truncated.writerIndex - 3)
        #expect(throws: CodecError.self) { try truncated.readPeerStatusReport() }
    }
}
