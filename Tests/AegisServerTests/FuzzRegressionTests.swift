import AegisServer
import NIOCore
import Testing

/// Inputs found by `scripts/fuzz` (target resp) that trapped, replayed as tests.
@Suite struct RESPFuzzRegressionTests {
    /// `%` (a map) with a pair count near Int.max: counting its values (twice the
    /// pairs) overflowed. It must be refused as malformed.
    @Test func test_valueParser_mapWithHugeCount_isRefusedNotTrapped() {
        let input: [UInt8] = [
            0x01, 0x25, 0x30, 0x0d, 0x0a, 0x25, 0x30, 0x30, 0x36, 0x30, 0x0d, 0x0a, 0x25, 0x2b, 0x36, 0x36,
            0x30, 0x36, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x36, 0x30, 0x30, 0x30, 0x33, 0x33, 0x30, 0x33,
            0x33, 0x0d, 0x0a, 0x2b, 0x0d, 0x0d, 0x0a, 0xff, 0xff,
        ]
        // The fuzz target parses from every offset its chunking produces; the map
        // header with the huge count starts at byte 12.
        var buffer = ByteBuffer(bytes: input[12...])
        #expect(throws: RESPProtocolError.self) { _ = try RESPValueParser.parse(&buffer) }
        var direct = ByteBuffer(string: "%\(Int.max / 2 + 1)\r\n+a\r\n")
        #expect(throws: RESPProtocolError.self) { _ = try RESPValueParser.parse(&direct) }
    }
}
