import AegisServer
import NIOCore
import Testing

/// Decodes every complete command in `input`.
private func decodeAll(_ input: String, limits: RESPLimits = RESPLimits()) throws -> (requests: [[String]], rest: Int) {
    var decoder = RESPRequestDecoder(limits: limits)
    var buffer = ByteBuffer(string: input)
    var requests: [[String]] = []
    while let request = try decoder.next(from: &buffer) {
        requests.append(request.arguments.map { String(buffer: $0) })
    }
    return (requests, buffer.readableBytes)
}

@Suite struct RESPRequestDecoderTests {
    @Test func test_decode_arrayOfBulkStrings() throws {
        let result = try decodeAll("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n")
        #expect(result.requests == [["SET", "k", "value"]])
        #expect(result.rest == 0)
    }

    @Test func test_decode_pipelineOfCommandsInOneBuffer_inOrder() throws {
        let one = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        let result = try decodeAll(one + "*1\r\n$4\r\nPING\r\n" + one.replacingOccurrences(of: "$1\r\na", with: "$1\r\nb"))
        #expect(result.requests == [["GET", "a"], ["PING"], ["GET", "b"]])
    }

    @Test func test_decode_everySplitPoint_givesTheSameCommands() throws {
        let input = Array("*2\r\n$4\r\nECHO\r\n$12\r\nhello\r\nworld\r\n*1\r\n$4\r\nPING\r\nPING\r\n".utf8)
        for split in 0 ... input.count {
            var decoder = RESPRequestDecoder()
            var buffer = ByteBuffer(bytes: input[0 ..< split])
            var requests: [[String]] = []
            while let request = try decoder.next(from: &buffer) { requests.append(request.arguments.map { String(buffer: $0) }) }
            buffer.writeBytes(input[split...])
            while let request = try decoder.next(from: &buffer) { requests.append(request.arguments.map { String(buffer: $0) }) }
            #expect(requests == [["ECHO", "hello\r\nworld"], ["PING"], ["PING"]], "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test func test_decode_partialFrame_needsMoreDataAndConsumesOnlyCompleteArguments() throws {
        var decoder = RESPRequestDecoder()
        var buffer = ByteBuffer(string: "*2\r\n$3\r\nGET\r\n$5\r\nab")
        #expect(try decoder.next(from: &buffer) == nil)
        // The complete argument is consumed; the incomplete one waits.
        #expect(String(buffer: buffer) == "$5\r\nab")
        buffer.writeString("cde\r\n")
        let request = try #require(try decoder.next(from: &buffer))
        #expect(request.arguments.map { String(buffer: $0) } == ["GET", "abcde"])
    }

    @Test func test_decode_binarySafeArguments() throws {
        var decoder = RESPRequestDecoder()
        var buffer = ByteBuffer(bytes: Array("*2\r\n$3\r\nGET\r\n$3\r\n".utf8) + [0, 13, 255] + [13, 10])
        let request = try #require(try decoder.next(from: &buffer))
        #expect(Array(request.arguments[1].readableBytesView) == [0, 13, 255])
    }

    @Test func test_decode_inlineCommands_withQuotesAndCRLFOrLF() throws {
        let result = try decodeAll("PING\r\nSET key \"hello world\\n\" \r\nGET 'it\\'s'\n\r\n  \nECHO \"\\x41\\x42\"\n")
        #expect(result.requests == [["PING"], ["SET", "key", "hello world\n"], ["GET", "it's"], ["ECHO", "AB"]])
    }

    @Test func test_decode_emptyArraysAreSkipped() throws {
        #expect(try decodeAll("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").requests == [["PING"]])
    }

    @Test(arguments: [
        ("*1\r\n:4\r\n", "expected '$', got ':'"),
        ("*x\r\n", "invalid multibulk length"),
        ("*1\r\n$-5\r\n", "invalid bulk length"),
        ("*1\r\n$abc\r\n", "invalid bulk length"),
        ("*1\r\n$3\r\nabcde\r\n", "bulk string of 3 bytes not followed by CRLF"),
        ("*1\r\n$1\n", "invalid bulk length"),
        ("SET \"unterminated\r\n", "unbalanced quotes in request"),
        ("SET \"a\"b\r\n", "unbalanced quotes in request"),
    ])
    func test_decode_malformedInput_throwsProtocolError(input: String, message: String) {
        #expect(throws: RESPProtocolError(message)) { try decodeAll(input) }
    }

    @Test func test_decode_limits_areEnforced() {
        let limits = RESPLimits(maxBulkLength: 10, maxArrayLength: 3, maxInlineLength: 16, maxRequestBytes: 15)
        #expect(throws: RESPProtocolError.self) { try decodeAll("*4\r\n", limits: limits) }
        #expect(throws: RESPProtocolError.self) { try decodeAll("*1\r\n$11\r\n", limits: limits) }
        #expect(throws: RESPProtocolError.self) { try decodeAll("*2\r\n$10\r\n0123456789\r\n$6\r\n", limits: limits) }
        #expect(throws: RESPProtocolError("too big inline request")) { try decodeAll(String(repeating: "A", count: 17), limits: limits) }
        // At the limits, input is accepted.
        #expect((try? decodeAll("*3\r\n$10\r\n0123456789\r\n$1\r\na\r\n$1\r\nb\r\n", limits: limits).requests.count) == 1)
    }
}

@Suite struct RESPValueTests {
    private func encode(_ value: RESPValue, _ version: RESPVersion) -> String {
        var buffer = ByteBuffer()
        buffer.writeRESPValue(value, version: version)
        return String(buffer: buffer)
    }

    @Test func test_encode_resp2Forms() {
        #expect(encode(.ok, .resp2) == "+OK\r\n")
        #expect(encode(.error("ERR bad\r\nthing"), .resp2) == "-ERR bad  thing\r\n")
        #expect(encode(.integer(-42), .resp2) == ":-42\r\n")
        #expect(encode(.bulk("hi"), .resp2) == "$2\r\nhi\r\n")
        #expect(encode(.null, .resp2) == "$-1\r\n")
        #expect(encode(.array([.integer(1), .null]), .resp2) == "*2\r\n:1\r\n$-1\r\n")
        #expect(encode(.map([RESPMapEntry(.bulk("a"), .integer(1))]), .resp2) == "*2\r\n$1\r\na\r\n:1\r\n")
        #expect(encode(.boolean(true), .resp2) == ":1\r\n")
        #expect(encode(.verbatimString(format: "txt", text: Array("x".utf8)), .resp2) == "$1\r\nx\r\n")
    }

    @Test func test_encode_resp3Forms() {
        #expect(encode(.null, .resp3) == "_\r\n")
        #expect(encode(.map([RESPMapEntry(.bulk("a"), .integer(1))]), .resp3) == "%1\r\n$1\r\na\r\n:1\r\n")
        #expect(encode(.set([.simpleString("x")]), .resp3) == "~1\r\n+x\r\n")
        #expect(encode(.boolean(false), .resp3) == "#f\r\n")
        #expect(encode(.double(1.5), .resp3) == ",1.5\r\n")
        #expect(encode(.verbatimString(format: "txt", text: Array("x".utf8)), .resp3) == "=5\r\ntxt:x\r\n")
    }

    @Test(arguments: [RESPVersion.resp2, .resp3])
    func test_parse_readsWhatIsEncoded(version: RESPVersion) throws {
        let values: [RESPValue] = [
            .ok, .error("ERR x"), .integer(7), .bulk("a\r\nb"), .null, .array([.bulk("x"), .array([.integer(1)])]),
        ]
        var buffer = ByteBuffer()
        for value in values { buffer.writeRESPValue(value, version: version) }
        var parsed: [RESPValue] = []
        while let value = try RESPValueParser.parse(&buffer) { parsed.append(value) }
        #expect(parsed == values)
    }

    @Test func test_parse_partialValue_consumesNothing() throws {
        var buffer = ByteBuffer(string: "*2\r\n$1\r\na\r\n$3\r\nbc")
        #expect(try RESPValueParser.parse(&buffer) == nil)
        #expect(buffer.readerIndex == 0)
        buffer.writeString("d\r\n")
        #expect(try RESPValueParser.parse(&buffer) == .array([.bulk("a"), .bulk("bcd")]))
    }
}
