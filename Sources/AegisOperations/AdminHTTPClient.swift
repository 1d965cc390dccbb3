public import Foundation
public import NIOCore
public import NIOHTTP1
import NIOPosix
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

    /// Sends one request on a new connection and reads its answer; throws when the
    /// connection fails or no answer comes within `timeout`.
    public static func send(method: String, host: String, port: Int, path: String, headers: [(String, String)], body: Data?,
                     tls: NIOSSLContext?, timeout: Duration = .seconds(30)) async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address is checked against the certificate's IP names; a
                        // host name is sent as SNI and checked against its DNS names.
                        let isIP = (try? SocketAddress(ipAddress: host, port: port)) != nil
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: isIP ? nil : host))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
                    head.headers.add(name: "Host", value: "\(host.contains(":") ? "[\(host)]" : host):\(port)")
                    head.headers.add(name: "Connection", value: "close")
                    head.headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
                    for (name, value) in headers { head.headers.add(name: name, value: value) }
                    try await outbound.write(.head(head))
                    if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                    try await outbound.write(.end(nil))
                    var status = 0
                    var responseHeaders: HTTPHeaders = [:]
                    var received = Data()
                    for try await part in inbound {
                        switch part {
                        case .head(let responseHead):
                            status = Int(responseHead.status.code)
                            responseHeaders = responseHead.headers
                        case .body(let buffer):
                            guard received.count + buffer.readableBytes <= maxResponseBytes else {
                                throw AdminAPIError("the admin API answered more than \(maxResponseBytes) bytes")
                            }
                            received.append(contentsOf: buffer.readableBytesView)
                        case .end: return Response(status: status, body: received, headers: responseHeaders)
                        }
                    }
                    throw AdminAPIError("the admin API closed the connection before answering")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let response = try await group.next() ?? nil else {
                channel.channel.close(promise: nil)
                throw AdminAPIError("no answer from the admin API at \(host):\(port) within \(timeout)")
            }
            return response
        }
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
