import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A minimal HTTP/1.1 client for the admin API, over TLS when given a context (the
/// CA of a cluster is not in the system trust store, and Foundation's URLSession
/// cannot be told to trust another CA on Linux). One request per connection.
enum AdminHTTPClient {
    struct Response {
        var status: Int
        var body: Data
        /// The response's headers (names as sent).
        var headers: HTTPHeaders = [:]
    }

    /// The largest response body read, in bytes.
    static let maxResponseBytes = 16 << 20

    static func send(method: String, host: String, port: Int, path: String, headers: [(String, String)], body: Data?,
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
                                throw ToolError("the admin API answered more than \(maxResponseBytes) bytes")
                            }
                            received.append(contentsOf: buffer.readableBytesView)
                        case .end: return Response(status: status, body: received, headers: responseHeaders)
                        }
                    }
                    throw ToolError("the admin API closed the connection before answering")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let response = try await group.next() ?? nil else {
                channel.channel.close(promise: nil)
                throw ToolError("no answer from the admin API at \(host):\(port) within \(timeout)")
            }
            return response
        }
    }
}
