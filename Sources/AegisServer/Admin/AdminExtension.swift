import Foundation
public import Hummingbird
import NIOCore

/// More admin endpoints and health checks, contributed by a feature (backups, a
/// replication link) without the admin server knowing it.
public protocol AdminExtension: Sendable {
    /// Adds routes. `authorize` returns the refusal to send when the request lacks the
    /// admin token (`nil`: go on).
    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?)
    /// Checks the feature registers in the node's `HealthRegistry` when the admin server
    /// is created. A dependency (a backup target, a link to another cluster) uses scope
    /// `.dependency`: it fails `/healthz` and its own path, never `/livez` or `/readyz`.
    func healthChecks() -> [HealthCheck]
}

extension AdminExtension {
    /// No checks.
    public func healthChecks() -> [HealthCheck] { [] }
}

/// Answers of admin endpoints, for extensions.
public enum AdminResponses {
    /// `value` as pretty-printed JSON with sorted keys and a final newline.
    public static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var buffer = ByteBuffer(bytes: (try? encoder.encode(value)) ?? Data("{}".utf8))
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: buffer))
    }
}
