import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// HTTPS for the admin server with certificates that can change while it runs: each
/// connection gets the server context current when it is accepted (HummingbirdTLS's
/// `TLSChannel` fixes one context for the server's life).
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let context: @Sendable () throws -> NIOSSLContext

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: try context()))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ReloadingTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS with the context `context` returns for each connection.
    static func reloadingTLS(_ context: @escaping @Sendable () throws -> NIOSSLContext) -> HTTPServerBuilder {
        .init { responder in
            ReloadingTLSChannel(base: HTTP1Channel(responder: responder), context: context)
        }
    }
}
