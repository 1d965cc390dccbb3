import AegisRaft
@testable import AegisTransport
import NIOCore
import NIOEmbedded
import Testing

@Suite struct CodecTests {
    private func frame(_ message: Message) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeMessageFrame(message)
        return buffer
    }

    @Test func test_codec_roundTripsEveryMessageKindExactly() throws {
        var generator = MessageGenerator(seed: 0xA3615)
        var seen = Set<MessageType>()
        for iteration in 0..<3000 {
            let message = generator.message()
            seen.insert(message.type)
            var buffer = frame(message)
            let size = buffer.readableBytes
            let decoded = try buffer.readMessageFrame()
            #expect(decoded == message, "iteration \(iteration), kind \(message.type)")
            #expect(buffer.readableBytes == 0)
            #expect(size > WireFormat.lengthPrefixSize + WireFormat.headerSize)
        }
        #expect(seen == Set(MessageType.allCases))
    }

    @Test func test_codec_raftMessageSurvivesTheEnvelope() throws {
        var generator = MessageGenerator(seed: 7)
        for type in MessageType.allCases {
            guard let payload = generator.raftPayload(type) else { continue }
            let raft = RaftMessage(from: "n1", to: "n2", payload: payload)
            var buffer = frame(Message(raft))
            #expect(try buffer.readMessageFrame()?.raftMessage == raft)
        }
    }

    // The generator leaves `requestsAppend` at its default; both values must survive.
    @Test func test_codec_heartbeatResponseCarriesTheAppendRequest() throws {
        for wants in [false, true] {
            let raft = RaftMessage(from: "n2", to: "n1", payload: .heartbeatResponse(
                HeartbeatResponse(term: 3, followerID: "n2", context: 9, requestsAppend: wants)))
            var buffer = frame(Message(raft))
            #expect(try buffer.readMessageFrame()?.raftMessage == raft)
        }
    }

    // A node set of many empty names is 4 bytes each on the wire; decoding it must not
    // reserve a hash table sized by the claimed count.
    @Test func test_codec_hugeNodeSetOfEmptyNamesDecodesToOneName() throws {
        var body = ByteBuffer()
        body.writeInteger(UInt32(1_000_000))
        for _ in 0..<1_000_000 { body.writeInteger(UInt32(0)) }
        let nodes = try body.readNodeSet("voters")
        #expect(nodes == [NodeID("")])
        #expect(nodes.capacity < 1000)  // was >= 1,000,000: ~40 MB for a 4 MB frame
        #expect(body.readableBytes == 0)
    }

    @Test func test_codec_manyFramesInOneBufferDecodeInOrder() throws {
        var generator = MessageGenerator(seed: 11)
        let messages = (0..<200).map { _ in generator.message() }
        var buffer = ByteBuffer()
        for message in messages { buffer.writeMessageFrame(message) }
        var decoded: [Message] = []
        while let message = try buffer.readMessageFrame() { decoded.append(message) }
        #expect(decoded == messages)
    }

    @Test func test_codec_partialFrameNeedsMoreDataAndConsumesNothing() throws {
        var generator = MessageGenerator(seed: 3)
        let whole = frame(generator.message(.appendEntries))
        for length in 0..<whole.readableBytes {
            var prefix = whole.getSlice(at: 0, length: length) ?? ByteBuffer()
            #expect(try prefix.readMessageFrame() == nil)
            #expect(prefix.readableBytes == length)
        }
    }

    @Test func test_codec_oversizedFrameThrowsBeforeBuffering() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1 << 30))  // claims 1 GiB; nothing else follows
        #expect(throws: CodecError.frameTooLarge(length: 1 << 30, maximum: 1 << 20)) {
            _ = try buffer.readMessageFrame(maximumFrameSize: 1 << 20)
        }
    }

    @Test func test_codec_frameTooSmallThrows() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1))
        buffer.writeInteger(WireFormat.version)
        #expect(throws: CodecError.frameTooSmall(length: 1)) { _ = try buffer.readMessageFrame() }
    }

    @Test func test_codec_truncatedBodyThrows() throws {
        var generator = MessageGenerator(seed: 5)
        for type in MessageType.allCases {
            let whole = frame(generator.message(type))
            let bodyLength = whole.readableBytes - WireFormat.lengthPrefixSize
            // Shorten the frame by rewriting its length: the body then ends early.
            for cut in 1...min(8, bodyLength - WireFormat.headerSize) {
                var truncated = ByteBuffer()
                truncated.writeInteger(UInt32(bodyLength - cut))
                truncated.writeImmutableBuffer(whole.getSlice(at: 4, length: bodyLength - cut) ?? ByteBuffer())
                #expect(throws: CodecError.self, "kind \(type), cut \(cut)") { _ = try truncated.readMessageFrame() }
            }
        }
    }

    @Test func test_codec_trailingBytesThrow() {
        var buffer = ByteBuffer()
        let message = Message(from: "a", to: "b", payload: .raft(.timeoutNow(term: 3)))
        var body = ByteBuffer()
        body.writeMessageBody(message)
        buffer.writeInteger(UInt32(body.readableBytes + 2 + 1))
        buffer.writeInteger(WireFormat.version)
        buffer.writeInteger(MessageType.timeoutNow.rawValue)
        buffer.writeImmutableBuffer(body)
        buffer.writeInteger(UInt8(0xFF))
        #expect(throws: CodecError.trailingBytes(count: 1)) { _ = try buffer.readMessageFrame() }
    }

    @Test func test_codec_unknownVersionAndKindThrow() {
        var badVersion = ByteBuffer(bytes: [0, 0, 0, 2, 99, 1])
        #expect(throws: CodecError.unsupportedVersion(99)) { _ = try badVersion.readMessageFrame() }
        var badKind = ByteBuffer(bytes: [0, 0, 0, 2, WireFormat.version, 200])
        #expect(throws: CodecError.unknownKind(200)) { _ = try badKind.readMessageFrame() }
    }

    @Test func test_codec_hostileEntryCountThrowsWithoutAllocating() {
        var buffer = ByteBuffer()
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(WireFormat.version)
        buffer.writeInteger(MessageType.forwardedProposal.rawValue)
        buffer.writeNodeID("a")
        buffer.writeNodeID("b")
        buffer.writeInteger(UInt64(1))          // term
        buffer.writeInteger(UInt32.max)         // entries.count: 4 billion entries
        buffer.setInteger(UInt32(buffer.readableBytes - 4), at: start)
        #expect(throws: CodecError.lengthOutOfBounds(field: "entries.count", length: UInt64(UInt32.max), available: 0)) {
            _ = try buffer.readMessageFrame()
        }
    }

    @Test func test_codec_hostileStringLengthThrows() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(2 + 4))
        buffer.writeInteger(WireFormat.version)
        buffer.writeInteger(MessageType.heartbeat.rawValue)
        buffer.writeInteger(UInt32(1 << 31))  // message.from claims 2 GiB
        #expect(throws: CodecError.self) { _ = try buffer.readMessageFrame() }
    }

    @Test func test_codec_invalidBooleanAndEntryTypeThrow() {
        let message = Message(from: "a", to: "b", payload: .raft(.voteResponse(VoteResponse(term: 1, voteGranted: true, voterID: "a"))))
        var buffer = frame(message)
        // Header (6) + from (4+1) + to (4+1) + term (8) = offset of voteGranted.
        buffer.setInteger(UInt8(2), at: 6 + 5 + 5 + 8)
        #expect(throws: CodecError.invalidValue(field: "voteResponse.voteGranted", value: 2)) { _ = try buffer.readMessageFrame() }

        let append = Message(from: "a", to: "b", payload: .raft(.forwardedProposal(term: 1, entries: [LogEntry(index: 1, term: 1)])))
        var appendBuffer = frame(append)
        // Header + from + to + term + count + entry.index + entry.term = offset of entry.type.
        appendBuffer.setInteger(UInt8(9), at: 6 + 5 + 5 + 8 + 4 + 16)
        #expect(throws: CodecError.invalidValue(field: "entry.type", value: 9)) { _ = try appendBuffer.readMessageFrame() }
    }

    @Test func test_codec_randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 0xBAD)
        var outcomes = (decoded: 0, incomplete: 0, rejected: 0)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...64, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half the time, make the length prefix plausible so the body decoder runs.
            if bytes.count >= 6 && rng.next() & 1 == 0 {
                let body = UInt32(bytes.count - 4)
                bytes[0] = 0; bytes[1] = 0; bytes[2] = UInt8(body >> 8); bytes[3] = UInt8(body & 0xFF)
                bytes[4] = WireFormat.version
                bytes[5] = UInt8.random(in: 1...14, using: &rng)
            }
            var buffer = ByteBuffer(bytes: bytes)
            do {
                if try buffer.readMessageFrame(maximumFrameSize: 1 << 16) == nil { outcomes.incomplete += 1 } else { outcomes.decoded += 1 }
            } catch {
                outcomes.rejected += 1
            }
        }
        // Random input must exercise the rejection paths, not only "need more data".
        #expect(outcomes.rejected > 1000)
        #expect(outcomes.incomplete > 0)
    }

    @Test func test_codec_mutatedFramesNeverCrash() {
        var generator = MessageGenerator(seed: 0xF122)
        var rejected = 0
        for _ in 0..<5000 {
            var bytes = Array(frame(generator.message()).readableBytesView)
            for _ in 0..<generator.int(1...4) {
                bytes[generator.int(0...bytes.count - 1)] = UInt8.random(in: 0...255, using: &generator.rng)
            }
            var buffer = ByteBuffer(bytes: bytes)
            do { _ = try buffer.readMessageFrame() } catch { rejected += 1 }
        }
        #expect(rejected > 0)
    }

    @Test func test_codec_handshakeRoundTrips() throws {
        let handshake = Handshake(clusterID: "prod-eu", from: "n1", to: "n2")
        var buffer = ByteBuffer()
        buffer.writeHandshakeFrame(handshake)
        #expect(try buffer.readFrame(maximumFrameSize: 1024) == .handshake(handshake))
        var refused = ByteBuffer()
        refused.writeHandshakeRefusedFrame(TransportError(.clusterMismatch, "other cluster"))
        #expect(try refused.readFrame(maximumFrameSize: 1024) == .handshakeRefused(TransportError(.clusterMismatch, "other cluster")))
    }

    @Test func test_codec_handshakeFrameIsNotAMessage() {
        var buffer = ByteBuffer()
        buffer.writeHandshakeFrame(Handshake(clusterID: "c", from: "a", to: "b"))
        #expect(throws: CodecError.unknownKind(0x80)) { _ = try buffer.readMessageFrame() }
    }

    @Test func test_frameDecoder_reassemblesFramesSplitAcrossReads() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameSize: 1 << 20)))
        var generator = MessageGenerator(seed: 21)
        let messages = (0..<20).map { _ in generator.message() }
        var stream = ByteBuffer()
        for message in messages { stream.writeMessageFrame(message) }
        // Feed the stream in odd-sized pieces.
        while stream.readableBytes > 0 {
            let piece = stream.readSlice(length: min(stream.readableBytes, generator.int(1...37)))!
            try channel.writeInbound(piece)
        }
        var decoded: [Message] = []
        while let received = try channel.readInbound(as: ReceivedFrame.self) {
            if case .message(let message) = received.frame { decoded.append(message) }
        }
        #expect(decoded == messages)
        _ = try channel.finish()
    }

    @Test func test_frameDecoder_throwsOnMalformedStream() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameSize: 1024)))
        #expect(throws: CodecError.frameTooLarge(length: 0x0101_0101, maximum: 1024)) {
            try channel.writeInbound(ByteBuffer(bytes: [1, 1, 1, 1, 1, 1]))
        }
        _ = try? channel.finish()
    }
}
