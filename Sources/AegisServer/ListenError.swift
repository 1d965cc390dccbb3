/// A listener that could not be opened: the address is in use, or the host is not an
/// address of this machine. `aegis serve` exits with it (exit status 1) instead of
/// running without the listener.
public struct ListenError: Error, CustomStringConvertible, Sendable {
    /// What the listener was for (`clients (RESP)`, `the admin API`).
    public var what: String
    public var host: String
    public var port: Int
    /// The system's reason.
    public var underlying: String

    public init(what: String, host: String, port: Int, underlying: String) {
        self.what = what
        self.host = host
        self.port = port
        self.underlying = underlying
    }

    public var description: String {
        "cannot listen for \(what) on \(host.contains(":") ? "[\(host)]" : host):\(port): \(underlying)"
    }
}
