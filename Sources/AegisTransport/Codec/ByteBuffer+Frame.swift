public import AegisRaft
public import NIOCore

/// The first frame on a connection: who connects, to whom, in which cluster.
public struct Handshake: Sendable, Hashable {
    /// The protocol version the connecting node speaks.
    public var protocolVersion: UInt16
    /// The cluster the connecting node belongs to.
    public var clusterID: String
    /// The UUID of the cluster's incarnation, created with its data; empty when the
    /// connecting node does not know it yet (it joined with an empty data directory).
    public var clusterUUID: String
    /// The connecting node.
    public var from: NodeID
    /// The node it wants to reach.
    public var to: NodeID

    /// Creates a handshake.
    public init(protocolVersion: UInt16 = WireFormat.protocolVersion, clusterID: String, clusterUUID: String = "",
                from: NodeID, to: NodeID) {
        self.protocolVersion = protocolVersion
        self.clusterID = clusterID
        self.clusterUUID = clusterUUID
        self.from = from
        self.to = to
    }
}

/// One decoded frame: a message or a step of the handshake.
enum Frame: Sendable, Hashable {
    case message(Message)
    case handshake(Handshake)
    case handshakeAccepted
    case handshakeRefused(TransportError)

    /// The `kind` byte of handshake frames (message frames use `MessageType`).
    enum ControlKind: UInt8 {
        case handshake = 0x80
        case handshakeAccepted = 0x81
        case handshakeRefused = 0x82
    }
}

extension ByteBuffer {
    // MARK: Frames

    /// Writes `message` as one frame: length, version, kind, body. Returns the number
    /// of bytes written (length prefix included).
    @discardableResult
    public mutating func writeMessageFrame(_ message: Message) -> Int {
        writeFrame(kind: message.type.rawValue) { $0.writeMessageBody(message) }
    }

    /// Reads one message frame. Returns `nil`, consuming nothing, while the frame is
    /// incomplete; throws when the frame is malformed, exceeds `maximumFrameSize`, or
    /// is a handshake frame.
    public mutating func readMessageFrame(maximumFrameSize: Int = WireFormat.defaultMaximumFrameSize) throws(CodecError) -> Message? {
        guard let frame = try readFrame(maximumFrameSize: maximumFrameSize) else { return nil }
        switch frame {
        case .message(let message): return message
        case .handshake: throw .unknownKind(Frame.ControlKind.handshake.rawValue)
        case .handshakeAccepted: throw .unknownKind(Frame.ControlKind.handshakeAccepted.rawValue)
        case .handshakeRefused: throw .unknownKind(Frame.ControlKind.handshakeRefused.rawValue)
        }
    }

    /// Writes a handshake frame.
    @discardableResult
    public mutating func writeHandshakeFrame(_ handshake: Handshake) -> Int {
        writeFrame(kind: Frame.ControlKind.handshake.rawValue) { buffer in
            buffer.writeInteger(WireFormat.handshakeMagic)
            buffer.writeInteger(handshake.protocolVersion)
            buffer.writeLengthPrefixedString(handshake.clusterID)
            buffer.writeLengthPrefixedString(handshake.clusterUUID)
            buffer.writeNodeID(handshake.from)
            buffer.writeNodeID(handshake.to)
        }
    }

    @discardableResult
    mutating func writeHandshakeAcceptedFrame() -> Int {
        writeFrame(kind: Frame.ControlKind.handshakeAccepted.rawValue) { _ in }
    }

    @discardableResult
    mutating func writeHandshakeRefusedFrame(_ error: TransportError) -> Int {
        writeFrame(kind: Frame.ControlKind.handshakeRefused.rawValue) { buffer in
            buffer.writeInteger(error.code.rawValue)
            buffer.writeLengthPrefixedString(error.message)
        }
    }

    /// Reserves the length prefix, writes the header and body, then fills in the length.
    @inline(__always)
    private mutating func writeFrame(kind: UInt8, body: (inout ByteBuffer) -> Void) -> Int {
        let start = writerIndex
        writeInteger(UInt32(0))
        writeInteger(WireFormat.version)
        writeInteger(kind)
        body(&self)
        let written = writerIndex - start
        setInteger(UInt32(truncatingIfNeeded: written - WireFormat.lengthPrefixSize), at: start)
        return written
    }

    /// Reads one frame of any kind; `nil` (nothing consumed) while incomplete.
    mutating func readFrame(maximumFrameSize: Int) throws(CodecError) -> Frame? {
        guard let rawLength = getInteger(at: readerIndex, as: UInt32.self) else { return nil }
        let length = Int(rawLength)
        guard length <= maximumFrameSize else { throw .frameTooLarge(length: length, maximum: maximumFrameSize) }
        guard length >= WireFormat.headerSize else { throw .frameTooSmall(length: length) }
        guard readableBytes - WireFormat.lengthPrefixSize >= length else { return nil }
        moveReaderIndex(forwardBy: WireFormat.lengthPrefixSize)
        guard var body = readSlice(length: length) else { return nil }
        let frame = try body.readFrameBody()
        guard body.readableBytes == 0 else { throw .trailingBytes(count: body.readableBytes) }
        return frame
    }

    /// Decodes version, kind and body from a buffer holding exactly one frame body.
    private mutating func readFrameBody() throws(CodecError) -> Frame {
        let version = try readUInt8("version")
        guard version == WireFormat.version else { throw .unsupportedVersion(version) }
        let kind = try readUInt8("kind")
        if let type = MessageType(rawValue: kind) {
            return .message(try readMessageBody(type: type))
        }
        switch Frame.ControlKind(rawValue: kind) {
        case .handshake:
            return .handshake(try readHandshakeBody())
        case .handshakeAccepted:
            return .handshakeAccepted
        case .handshakeRefused:
            let code = TransportError.Code(rawValue: try readUInt16("refusal.code"))
            return .handshakeRefused(TransportError(code, try readLengthPrefixedString("refusal.reason")))
        case nil:
            throw .unknownKind(kind)
        }
    }

    private mutating func readHandshakeBody() throws(CodecError) -> Handshake {
        let magic = try readUInt32("handshake.magic")
        guard magic == WireFormat.handshakeMagic else { throw .invalidValue(field: "handshake.magic", value: UInt64(magic)) }
        return Handshake(
            protocolVersion: try readUInt16("handshake.protocolVersion"),
            clusterID: try readLengthPrefixedString("handshake.clusterID"),
            clusterUUID: try readLengthPrefixedString("handshake.clusterUUID"),
            from: try readNodeID("handshake.from"),
            to: try readNodeID("handshake.to"))
    }

    // MARK: Messages

    /// Writes the body of a message (sender, receiver, payload), without frame header.
    public mutating func writeMessageBody(_ message: Message) {
        writeNodeID(message.from)
        writeNodeID(message.to)
        switch message.payload {
        case .raft(let payload): writeRaftPayload(payload)
        case .clientRequest(let request): writeClientRequest(request)
        case .clientResponse(let response): writeClientResponse(response)
        case .peerStatus(let report): writePeerStatusReport(report)
        }
    }

    /// Reads the body of a message of kind `type`.
    public mutating func readMessageBody(type: MessageType) throws(CodecError) -> Message {
        let from = try readNodeID("message.from")
        let to = try readNodeID("message.to")
        let payload: MessagePayload
        switch type {
        case .clientRequest: payload = .clientRequest(try readClientRequest())
        case .clientResponse: payload = .clientResponse(try readClientResponse())
        case .peerStatus: payload = .peerStatus(try readPeerStatusReport())
        default:
            guard let raft = try readRaftPayload(type: type) else { throw .unknownKind(type.rawValue) }
            payload = .raft(raft)
        }
        return Message(from: from, to: to, payload: payload)
    }

    /// Writes a client request: request ID, kind, command.
    public mutating func writeClientRequest(_ request: ClientRequest) {
        writeInteger(request.requestID)
        writeInteger(request.kind.rawValue)
        writeLengthPrefixedBytes(request.command)
    }

    /// Reads a client request.
    public mutating func readClientRequest() throws(CodecError) -> ClientRequest {
        let requestID = try readUInt64("clientRequest.requestID")
        let rawKind = try readUInt8("clientRequest.kind")
        guard let kind = ClientRequest.Kind(rawValue: rawKind) else {
            throw .invalidValue(field: "clientRequest.kind", value: UInt64(rawKind))
        }
        return ClientRequest(requestID: requestID, kind: kind, command: try readLengthPrefixedBytes("clientRequest.command"))
    }

    /// Writes a client response: request ID, then 0 + index + value, or 1 + code +
    /// message + optional leader hint.
    public mutating func writeClientResponse(_ response: ClientResponse) {
        writeInteger(response.requestID)
        switch response.outcome {
        case .success(let index, let value):
            writeInteger(UInt8(0))
            writeInteger(index)
            writeLengthPrefixedBytes(value)
        case .failure(let failure):
            writeInteger(UInt8(1))
            writeInteger(failure.code.rawValue)
            writeLengthPrefixedString(failure.message)
            writeOptionalNodeID(failure.leaderHint)
        }
    }

    /// Reads a client response.
    public mutating func readClientResponse() throws(CodecError) -> ClientResponse {
        let requestID = try readUInt64("clientResponse.requestID")
        switch try readUInt8("clientResponse.outcome") {
        case 0:
            let index = try readUInt64("clientResponse.index")
            let value = try readLengthPrefixedBytes("clientResponse.value")
            return ClientResponse(requestID: requestID, outcome: .success(index: index, value: value))
        case 1:
            let code = ClientFailure.Code(rawValue: try readUInt16("clientResponse.code"))
            let message = try readLengthPrefixedString("clientResponse.message")
            let hint = try readOptionalNodeID("clientResponse.leaderHint")
            return ClientResponse(requestID: requestID, outcome: .failure(ClientFailure(code: code, message: message, leaderHint: hint)))
        case let other:
            throw .invalidValue(field: "clientResponse.outcome", value: UInt64(other))
        }
    }

    /// Writes a peer status report: term, commit, applied and last index (8 bytes
    /// each), then a count (4 bytes) of (node ID, match index) pairs sorted by node ID.
    public mutating func writePeerStatusReport(_ report: PeerStatusReport) {
        writeInteger(report.term)
        writeInteger(report.commitIndex)
        writeInteger(report.appliedIndex)
        writeInteger(report.lastIndex)
        writeInteger(UInt32(clamping: report.progress.count))
        for (id, match) in report.progress.sorted(by: { $0.key < $1.key }) {
            writeNodeID(id)
            writeInteger(match)
        }
    }

    /// Reads a peer status report; refuses more than `PeerStatusReport.maxProgressEntries`
    /// pairs, a node named twice, and an applied index beyond the commit index.
    public mutating func readPeerStatusReport() throws(CodecError) -> PeerStatusReport {
        let term = try readUInt64("peerStatus.term")
        let commit = try readUInt64("peerStatus.commitIndex")
        let applied = try readUInt64("peerStatus.appliedIndex")
        let last = try readUInt64("peerStatus.lastIndex")
        guard applied <= commit else { throw .invalidValue(field: "peerStatus.appliedIndex", value: applied) }
        // Each pair is at least a 4-byte node ID length and an 8-byte index.
        let count = try readLength("peerStatus.progress", minimumElementSize: 12)
        guard count <= PeerStatusReport.maxProgressEntries else {
            throw .invalidValue(field: "peerStatus.progress", value: UInt64(count))
        }
        var progress: [NodeID: LogIndex] = [:]
        for _ in 0 ..< count {
            let id = try readNodeID("peerStatus.progress.node")
            let match = try readUInt64("peerStatus.progress.match")
            guard progress.updateValue(match, forKey: id) == nil else {
                throw .invalidValue(field: "peerStatus.progress.node", value: UInt64(count))
            }
        }
        return PeerStatusReport(term: term, commitIndex: commit, appliedIndex: applied, lastIndex: last, progress: progress)
    }
}
