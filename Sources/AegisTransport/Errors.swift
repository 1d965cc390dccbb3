/// Why bytes could not be decoded. Every decoding function of this module throws it
/// instead of trapping; a connection that sends such bytes is closed.
public enum CodecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The frame's length prefix exceeds the configured maximum frame size.
    case frameTooLarge(length: Int, maximum: Int)
    /// The frame's length prefix is too small to hold a version and a kind.
    case frameTooSmall(length: Int)
    /// The frame was written by an encoding version this build does not understand.
    case unsupportedVersion(UInt8)
    /// The frame's kind byte names no known message.
    case unknownKind(UInt8)
    /// The frame ended before `field` was complete.
    case truncated(field: String)
    /// A length or count field claims more than the frame holds.
    case lengthOutOfBounds(field: String, length: UInt64, available: Int)
    /// A field holds a value outside its domain (for example a boolean that is neither 0 nor 1).
    case invalidValue(field: String, value: UInt64)
    /// The frame holds bytes after its last field.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let maximum):
            return "frame of \(length) bytes exceeds the maximum frame size of \(maximum) bytes"
        case .frameTooSmall(let length):
            return "frame of \(length) bytes is too small for a version and a kind"
        case .unsupportedVersion(let version):
            return "unsupported encoding version \(version) (this build speaks version \(WireFormat.version))"
        case .unknownKind(let kind):
            return "unknown frame kind \(kind)"
        case .truncated(let field):
            return "frame ends inside field '\(field)'"
        case .lengthOutOfBounds(let field, let length, let available):
            return "field '\(field)' claims \(length) but only \(available) bytes remain in the frame"
        case .invalidValue(let field, let value):
            return "field '\(field)' has invalid value \(value)"
        case .trailingBytes(let count):
            return "\(count) unexpected bytes after the end of the message"
        }
    }
}

/// An error of the transport (configuration, lifecycle, handshake).
public struct TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The category of a transport error. New codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        /// The wire value (also used for handshake refusal reasons).
        public var rawValue: UInt16
        /// Creates a code from its wire value.
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The peer belongs to another cluster.
        public static let clusterMismatch = Code(rawValue: 1)
        /// The peer is not in this node's address book.
        public static let unknownPeer = Code(rawValue: 2)
        /// The peer wanted to reach a different node.
        public static let wrongDestination = Code(rawValue: 3)
        /// The peer speaks an unsupported protocol version.
        public static let unsupportedProtocol = Code(rawValue: 4)
        /// The peer broke the protocol (bad handshake, messages with a forged sender).
        public static let protocolViolation = Code(rawValue: 5)
        /// The transport is not running (not started yet, or shut down).
        public static let notRunning = Code(rawValue: 6)
        /// The configuration is invalid.
        public static let invalidConfiguration = Code(rawValue: 7)
        /// The peer refused the handshake for a reason this build does not know.
        public static let refused = Code(rawValue: 8)
        /// The peer's TLS certificate does not name the node ID it claims in the handshake
        /// (or the node dialled), or the peer presented no certificate.
        public static let identityMismatch = Code(rawValue: 9)
    }

    /// The category.
    public var code: Code
    /// What happened and what to do about it.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "transport error \(code.rawValue): \(message)" }
}
