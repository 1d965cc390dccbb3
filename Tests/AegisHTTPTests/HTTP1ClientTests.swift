import AegisHTTP
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@Suite struct HTTPEndpointTests {
    @Test func parsesSchemesHostsAndPorts() throws {
        let plain = try HTTPEndpoint(parsing: "http://127.0.0.1:5000")
        #expect(plain == HTTPEndpoint(host: "127.0.0.1", port: 5000, isTLS: false))
        #expect(plain.authority == "127.0.0.1:5000")
        let secure = try HTTPEndpoint(parsing: "https://s3.eu-west-1.amazonaws.com/")
        #expect(secure.port == 443 && secure.isTLS && secure.authority == "s3.eu-west-1.amazonaws.com")
        let v6 = try HTTPEndpoint(parsing: "http://[::1]:9000")
        #expect(v6.host == "::1" && v6.port == 9000 && v6.authority == "[::1]:9000")
        #expect(try HTTPEndpoint(parsing: "http://minio").authority == "minio")
        #expect(try HTTPEndpoint(parsing: "http://minio:80").authority == "minio")
    }

    @Test(arguments: ["", "ftp://host", "http://", "http://host/path", "http://host?x=1", "http://user@host",
                      "http://host:0", "http://host:65536", "http://host:x", "http://[::1", "http://[::1]x", "http://:80"])
    func refusesWhatIsNotAnEndpoint(_ url: String) {
        #expect(throws: HTTP1ClientError.self) { try HTTPEndpoint(parsing: url) }
    }
}

/// A one-route HTTP server on 127.0.0.1: answers every request with `answer(head, body)`,
/// or never answers when that returns nil.
private final class TestServer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let answer: @Sendable (HTTPRequestHead, ByteBuffer) -> (HTTPResponseStatus, String)?
    var head: HTTPRequestHead?
    var body = ByteBuffer()

    init(answer: @escaping @Sendable (HTTPRequestHead, ByteBuffer) -> (HTTPResponseStatus, String)?) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body(var part): body.writeBuffer(&part)
        case .end:
            guard let head, let (status, text) = answer(head, body) else { return }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "\(text.utf8.count)")
            headers.add(name: "X-Test", value: "yes")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    static func start(_ answer: @escaping @Sendable (HTTPRequestHead, ByteBuffer) -> (HTTPResponseStatus, String)?)
        async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(TestServer(answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

@Suite struct HTTP1ClientTests {
    @Test func sendsTheRequestAndReadsTheWholeAnswer() async throws {
        let server = try await TestServer.start { head, body in
            (.created, "\(head.method.rawValue) \(head.uri) host=\(head.headers["Host"].joined()) "
                + "length=\(head.headers["Content-Length"].joined()) body=\(String(buffer: body))")
        }
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let response = try await HTTP1Client.send(
            method: .PUT, host: "127.0.0.1", port: port, path: "/bucket/key?x=1", headers: [("Host", "example:1")],
            body: ByteBuffer(string: "hello"), tls: nil, timeout: .seconds(10), maxResponseBytes: 1 << 20)
        #expect(response.status == 201)
        #expect(response.headers["X-Test"] == ["yes"])
        #expect(String(buffer: response.body) == "PUT /bucket/key?x=1 host=example:1 length=5 body=hello")
        // Without a Host header, host:port is sent.
        let plain = try await HTTP1Client.send(method: .GET, host: "127.0.0.1", port: port, path: "/", headers: [],
                                               body: nil, tls: nil, timeout: .seconds(10), maxResponseBytes: 1 << 20)
        #expect(String(buffer: plain.body) == "GET / host=127.0.0.1:\(port) length=0 body=")
    }

    @Test func refusesAnAnswerOverTheBound() async throws {
        let server = try await TestServer.start { _, _ in (.ok, String(repeating: "x", count: 1000)) }
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let error = await #expect(throws: HTTP1ClientError.self) {
            try await HTTP1Client.send(method: .GET, host: "127.0.0.1", port: port, path: "/", headers: [], body: nil,
                                       tls: nil, timeout: .seconds(10), maxResponseBytes: 999)
        }
        #expect(error?.description.contains("more than 999 bytes") == true)
        let exact = try await HTTP1Client.send(method: .GET, host: "127.0.0.1", port: port, path: "/", headers: [],
                                               body: nil, tls: nil, timeout: .seconds(10), maxResponseBytes: 1000)
        #expect(exact.body.readableBytes == 1000)
    }

    @Test func givesUpAtTheDeadline() async throws {
        let server = try await TestServer.start { _, _ in nil }
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let started = ContinuousClock.now
        let error = await #expect(throws: HTTP1ClientError.self) {
            try await HTTP1Client.send(method: .GET, host: "127.0.0.1", port: port, path: "/", headers: [], body: nil,
                                       tls: nil, timeout: .milliseconds(300), maxResponseBytes: 1000)
        }
        #expect(error?.description.contains("no answer from 127.0.0.1:\(port)") == true)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func reportsARefusedConnection() async throws {
        // A port that was just closed: nothing listens there.
        let server = try await TestServer.start { _, _ in (.ok, "") }
        let port = try #require(server.localAddress?.port)
        try await server.close()
        let error = await #expect(throws: HTTP1ClientError.self) {
            try await HTTP1Client.send(method: .GET, host: "127.0.0.1", port: port, path: "/x", headers: [], body: nil,
                                       tls: nil, timeout: .seconds(10), maxResponseBytes: 1000)
        }
        #expect(error?.description.contains("GET /x to 127.0.0.1:\(port) failed") == true)
    }
}
