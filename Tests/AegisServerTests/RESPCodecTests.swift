import AegisServer
import NIOCore
import NIOEmbedded
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

    @Test func test_decode_protocolLimits_areEnforced() {
        let limits = RESPLimits(maxValueSize: 10, maxRequestBytes: 45, maxBulkLength: 20, maxArrayLength: 3, maxInlineLength: 16)
        #expect(throws: RESPProtocolError.self) { try decodeAll("*4\r\n", limits: limits) }
        #expect(throws: RESPProtocolError.self) { try decodeAll("*1\r\n$21\r\n", limits: limits) }
        #expect(throws: RESPProtocolError("too big inline request")) { try decodeAll(String(repeating: "A", count: 17), limits: limits) }
        // At the limits, input is accepted (each argument counts its length plus 10 bytes).
        #expect((try? decodeAll("*3\r\n$10\r\n0123456789\r\n$3\r\nabc\r\n$1\r\nb\r\n", limits: limits).requests.count) == 1)
    }

    /// Every refused request, and the requests decoded, in order.
    private func decodeRefusals(_ input: String, limits: RESPLimits, splitEvery step: Int = Int.max) throws -> [String] {
        var decoder = RESPRequestDecoder(limits: limits)
        var buffer = ByteBuffer()
        var out: [String] = []
        let bytes = Array(input.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + step)
            buffer.writeBytes(bytes[offset ..< end])
            offset = end
            while let request = try decoder.next(from: &buffer) {
                out.append(request.refusal ?? request.arguments.map { String(buffer: $0) }.joined(separator: " "))
            }
        }
        return out
    }

    @Test(arguments: [1, 3, 7, Int.max])
    func test_decode_valueOverMaxValueSize_isRefusedAtItsHeader_andSkipped(splitEvery: Int) throws {
        let limits = RESPLimits(maxValueSize: 10, maxRequestBytes: 1000)
        let input = "*1\r\n$4\r\nPING\r\n" + "*4\r\n$4\r\nMSET\r\n$1\r\nk\r\n$11\r\n01234567890\r\n$2\r\nzz\r\n"
            + "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        let out = try decodeRefusals(input, limits: limits, splitEvery: splitEvery)
        #expect(out.count == 3)
        #expect(out[0] == "PING")
        #expect(out[1].hasPrefix("ERR value too large: an argument of 11 bytes is over the limit of 10 bytes"))
        #expect(out[2] == "GET k")
    }

    @Test func test_decode_refusal_comesBeforeTheValueArrives() throws {
        var decoder = RESPRequestDecoder(limits: RESPLimits(maxValueSize: 10))
        var buffer = ByteBuffer(string: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n")
        let refused = try #require(try decoder.next(from: &buffer))
        #expect(refused.refusal?.hasPrefix("ERR value too large") == true)
        #expect(refused.arguments.map { String(buffer: $0) } == ["SET"])
        buffer.writeBytes([UInt8](repeating: 65, count: 1_000_000))
        #expect(try decoder.next(from: &buffer) == nil)
        #expect(buffer.readableBytes == 0)  // skipped, not kept
        buffer.writeString("\r\nPING\r\n")
        #expect(try decoder.next(from: &buffer)?.arguments.map { String(buffer: $0) } == ["PING"])
    }

    @Test func test_decode_requestOverMaxRequestBytes_isRefused() throws {
        let limits = RESPLimits(maxValueSize: 10, maxRequestBytes: 40)
        // 14 + 11 + 11 = 36, then 11 more is 47 > 40.
        let out = try decodeRefusals("*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\nPING\r\n", limits: limits)
        #expect(out.count == 2)
        #expect(out[0].hasPrefix("ERR request too large: the command's arguments add up to more than 40 bytes"))
        #expect(out[1] == "PING")
    }

    @Test func test_decode_partialRequests_areHeldWithinTheSharedBudget() throws {
        let budget = RESPPartialRequestBudget(limit: 100)
        func channel() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPRequestDecoder(budget: budget)))
            return channel
        }
        let first = try channel(), second = try channel()
        let partial = "*2\r\n$3\r\nSET\r\n$100\r\n" + String(repeating: "x", count: 40)  // 61 bytes held
        try first.writeInbound(ByteBuffer(string: partial))
        #expect(budget.heldBytes >= 50)
        #expect(throws: RESPProtocolError.self) { try second.writeInbound(ByteBuffer(string: partial)) }
        // Completing a command releases what it held; closing a connection releases the rest.
        try first.writeInbound(ByteBuffer(string: String(repeating: "x", count: 60) + "\r\n"))
        #expect(budget.heldBytes == 0)
        try first.writeInbound(ByteBuffer(string: partial))
        #expect(budget.heldBytes > 0)
        _ = try? first.finish()
        _ = try? second.finish()
        #expect(budget.heldBytes == 0)
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
