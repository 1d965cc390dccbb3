/// An error from AegisCRDT. Every error carries a code a program can switch on and a
/// message a person can act on.
///
/// Decoding errors never leave a partially decoded value behind: the initialiser that
/// throws produces nothing, so bad bytes from the network or a file change nothing.
public struct CRDTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a value a program can switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The bytes end before the value does.
        public static let truncated = Code("truncated")
        /// The bytes are not a valid encoding (bad tag, overlong integer, unsorted or
        /// duplicate keys, invalid UTF-8, trailing bytes, inconsistent metadata).
        public static let malformed = Code("malformed")
        /// The encoding's format version is not one this build can read.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// The bytes encode a different type than the one requested.
        public static let typeMismatch = Code("typeMismatch")
        /// A remote hybrid-logical-clock timestamp is further in the future than the
        /// configured maximum skew allows.
        public static let clockSkew = Code("clockSkew")
        /// A counter or clock component would overflow its 64-bit (or 32-bit) range.
        public static let overflow = Code("overflow")
        /// An argument is outside its allowed range.
        public static let invalidArgument = Code("invalidArgument")
        /// A conflict identifier does not name a pending conflict.
        public static let unknownConflict = Code("unknownConflict")

        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// A message that says what happened and what to do about it.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
