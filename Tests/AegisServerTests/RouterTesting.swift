import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOEmbedded

// Calls an application's router directly, without a socket: each request is built,
// answered by the application's responder and its body collected. The tests used
// HummingbirdTesting's `.router` mode for this; that module also builds
// async-http-client (for its live mode), which nothing else here needs.

/// How `test` runs an application: only `.router` (requests straight to its responder).
enum RouterTestSetup {
    case router
}

/// An answer from the router.
struct RouterTestResponse {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
}

/// Sends requests to one application's responder.
struct RouterTestClient<Responder: HTTPResponder>
where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    let responder: Responder
    let logger: Logger

    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:],
                 body: ByteBuffer? = nil) async throws -> RouterTestResponse {
        var headers = headers
        if let body { headers[.contentLength] = String(body.readableBytes) }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: uri, headerFields: headers),
            body: RequestBody(buffer: body ?? ByteBuffer()))
        let context = Responder.Context(source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: logger))
        let response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch {
            // The router answers HTTP errors itself; anything else is what the server
            // would answer with a 500.
            response = Response(status: .internalServerError)
        }
        let writer = CollectingWriter()
        try await response.body.write(writer)
        return RouterTestResponse(status: response.status, headers: response.headers, body: writer.collected.value)
    }
}

/// Collects a response body (a reference, since `finish` consumes the writer).
private struct CollectingWriter: ResponseBodyWriter {
    final class Box: @unchecked Sendable {
        var value = ByteBuffer()
    }
    let collected = Box()

    mutating func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        collected.value.writeBuffer(&buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension ApplicationProtocol where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    /// Runs `body` with a client that sends requests straight to this application's router.
    func test<Value>(_ setup: RouterTestSetup,
                     _ body: (RouterTestClient<Responder>) async throws -> Value) async throws -> Value {
        try await body(RouterTestClient(responder: try await responder, logger: logger))
    }
}
