public import NIOCore
public import NIOHTTP1
import NIOPosix
public import NIOSSL

/// A request that got no usable answer: the address does not parse, the connection
/// failed, the peer closed it before answering, the answer was larger than allowed, or
/// none came in time. `description` says which, naming the peer.
public struct HTTP1ClientError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Where requests go, parsed from `http://HOST[:PORT]` or `https://HOST[:PORT]` (an IPv6
/// host in brackets). A trailing `/` is accepted; a path, query or user part is not.
public struct HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The host name or address, without brackets.
    public var host: String
    /// The TCP port (80 or 443 when the URL names none).
    public var port: Int
    /// Whether the scheme is `https`.
    public var isTLS: Bool

    /// `HOST[:PORT]` as a `Host` header carries it: the port only when it is not the
    /// scheme's default, an IPv6 address in brackets.
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (isTLS ? 443 : 80) ? name : "\(name):\(port)"
    }

    public var description: String { (isTLS ? "https://" : "http://") + authority }

    public init(host: String, port: Int, isTLS: Bool) {
        self.host = host
        self.port = port
        self.isTLS = isTLS
    }

    /// Parses an endpoint URL; throws a clear error for anything else.
    public init(parsing url: String) throws(HTTP1ClientError) {
        let rest: Substring
        if url.hasPrefix("https://") {
            isTLS = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            isTLS = false
            rest = url.dropFirst(7)
        } else {
            throw HTTP1ClientError("'\(url)' is not an http:// or https:// URL")
        }
        let authority = rest.hasSuffix("/") ? rest.dropLast() : rest
        guard !authority.isEmpty, !authority.contains(where: { "/?#@ ".contains($0) }) else {
            throw HTTP1ClientError("'\(url)' must be scheme://HOST[:PORT] with no path, query or user")
        }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw HTTP1ClientError("'\(url)': unclosed '[' in the host") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw HTTP1ClientError("'\(url)': unexpected text after the host") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        guard !host.isEmpty else { throw HTTP1ClientError("'\(url)' names no host") }
        if let portText {
            guard let port = Int(portText), (1...65_535).contains(port) else {
                throw HTTP1ClientError("'\(url)': the port must be 1-65535")
            }
            self.port = port
        } else {
            port = isTLS ? 443 : 80
        }
    }
}

/// A small HTTP/1.1 client over SwiftNIO: one request per connection, over TLS when
/// given a context, the answer read whole up to a bound, a deadline on the whole
/// exchange. The admin API's client and the S3 backup target both send through it.
///
/// One connection per request keeps it simple and stateless (no pool to bound or to
/// poison); its callers send few, large requests (S3 parts of megabytes) or rare
/// small ones (admin calls).
public enum HTTP1Client {
    /// An answer.
    public struct Response: Sendable {
        /// The HTTP status code.
        public var status: Int
        /// The response's headers (names as sent).
        public var headers: HTTPHeaders
        /// The body, whole.
        public var body: ByteBuffer
    }

    /// Sends one request on a new connection to `host:port` and reads its answer.
    ///
    /// - Parameters:
    ///   - headers: sent as given; a `Host` header is added (`host:port`) unless one is
    ///     among them, and `Content-Length` and `Connection: close` always are.
    ///   - tls: the client context for `https`; the certificate is checked against
    ///     `host` (an IP address against the certificate's IP names, a name as SNI).
    ///   - timeout: the deadline for connecting, sending and reading the whole answer.
    ///   - maxResponseBytes: the largest body read; a larger one is an error.
    /// - Throws: ``HTTP1ClientError`` for every failure.
    public static func send(method: HTTPMethod, host: String, port: Int, path: String, headers: [(String, String)],
                            body: ByteBuffer?, tls: NIOSSLContext?, timeout: Duration,
                            maxResponseBytes: Int) async throws(HTTP1ClientError) -> Response {
        let peer = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        do {
            return try await withThrowingTaskGroup(of: Response?.self) { group in
                group.addTask {
                    try await exchange(method: method, host: host, port: port, peer: peer, path: path, headers: headers,
                                       body: body, tls: tls, timeout: timeout, maxResponseBytes: maxResponseBytes)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let response = try await group.next() ?? nil else {
                    throw HTTP1ClientError("no answer from \(peer) within \(timeout)")
                }
                return response
            }
        } catch let error as HTTP1ClientError {
            throw error
        } catch {
            throw HTTP1ClientError("\(method.rawValue) \(path) to \(peer) failed: \(error)")
        }
    }

    private static func exchange(method: HTTPMethod, host: String, port: Int, peer: String, path: String,
                                 headers: [(String, String)], body: ByteBuffer?, tls: NIOSSLContext?,
                                 timeout: Duration, maxResponseBytes: Int) async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(min(.seconds(5), timeout)))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addTLSClientHandler(context: tls, host: host) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        // Closing on cancellation (the deadline) ends the read below.
        return try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
                if !headers.contains(where: { $0.0.lowercased() == "host" }) {
                    head.headers.add(name: "Host", value: peer)
                }
                head.headers.add(name: "Connection", value: "close")
                head.headers.add(name: "Content-Length", value: "\(body?.readableBytes ?? 0)")
                // The framing is this client's: one body of Content-Length, then close.
                for (name, value) in headers
                where !["content-length", "connection", "transfer-encoding"].contains(name.lowercased()) {
                    head.headers.add(name: name, value: value)
                }
                try await outbound.write(.head(head))
                if let body, body.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(body))) }
                try await outbound.write(.end(nil))
                var status = 0
                var responseHeaders: HTTPHeaders = [:]
                var received = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let responseHead):
                        status = Int(responseHead.status.code)
                        responseHeaders = responseHead.headers
                    case .body(var buffer):
                        guard buffer.readableBytes <= maxResponseBytes - received.readableBytes else {
                            throw HTTP1ClientError("\(peer) answered \(method.rawValue) \(path) with more than \(maxResponseBytes) bytes")
                        }
                        received.writeBuffer(&buffer)
                    case .end:
                        return Response(status: status, headers: responseHeaders, body: received)
                    }
                }
                throw HTTP1ClientError("\(peer) closed the connection before answering \(method.rawValue) \(path)")
            }
        } onCancel: {
            channel.channel.close(promise: nil)
        }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds a TLS client handler that checks the peer's certificate against `host`: an
    /// IP address against the certificate's IP names, a host name (also sent as SNI)
    /// against its DNS names. Every client connection to a node goes through this rule.
    public func addTLSClientHandler(context: NIOSSLContext, host: String) throws {
        let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        try addHandler(try NIOSSLClientHandler(context: context, serverHostname: isIP ? nil : host))
    }
}
