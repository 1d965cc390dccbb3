/// Why the change stream could not encode, decode or apply something. Bad input from
/// the network is `malformed` or `tooLarge`: it is refused whole and nothing is applied.
public enum StreamError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not a valid frame; the text says what is wrong.
    case malformed(String)
    /// A frame or batch is over a configured limit.
    case tooLarge(String)
    /// A compression library failed or is missing.
    case codec(String)

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed stream frame: \(why)"
        case .tooLarge(let why): return "stream frame refused: \(why)"
        case .codec(let why): return "stream codec: \(why)"
        }
    }
}
