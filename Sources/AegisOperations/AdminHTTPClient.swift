public import Foundation
public import NIOCore
public import NIOHTTP1
import AegisHTTP
public import NIOSSL

/// A minimal HTTP/1.1 client for the admin API, over TLS when given a context (the
/// CA of a cluster is not in the system trust store, and Foundation's URLSession
/// cannot be told to trust another CA on Linux). One request per connection.
public enum AdminHTTPClient {
    /// An answer.
    public struct Response: Sendable {
        /// The HTTP status.
        public var status: Int
        /// The body, at most `maxResponseBytes`.
        public var body: Data
        /// The response's headers (names as sent).
        public var headers: HTTPHeaders = [:]
    }

    /// The largest response body read, in bytes.
    public static let maxResponseBytes = 16 << 20

    /// Sends one request on a new connection and reads its answer (through
    /// `HTTP1Client`); throws its `HTTP1ClientError` when the connection fails, the
    /// answer is too large or none comes within `timeout` (callers such as
    /// ``AdminAccess`` add what to check: is the node running, with TLS?).
    public static func send(method: String, host: String, port: Int, path: String, headers: [(String, String)], body: Data?,
                     tls: NIOSSLContext?, timeout: Duration = .seconds(30)) async throws -> Response {
        let response = try await HTTP1Client.send(
            method: HTTPMethod(rawValue: method), host: host, port: port, path: path, headers: headers,
            body: body.map { ByteBuffer(bytes: $0) }, tls: tls, timeout: timeout, maxResponseBytes: maxResponseBytes)
        return Response(status: response.status, body: Data(response.body.readableBytesView), headers: response.headers)
    }
}

/// An admin API call that failed: unreachable, no answer in time, or a non-2xx answer
/// (its text is the server's error).
public struct AdminAPIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The HTTP status of a non-2xx answer (`nil` when there was none).
    public var status: Int?

    public init(_ description: String, status: Int? = nil) {
        self.description = description
        self.status = status
    }
}
