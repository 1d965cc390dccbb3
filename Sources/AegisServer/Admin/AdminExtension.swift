import Foundation
public import Hummingbird
import NIOCore

/// More admin endpoints and `/healthz` checks, contributed by a feature (backups) without
/// the admin server knowing it.
public protocol AdminExtension: Sendable {
    /// Adds routes. `authorize` returns the refusal to send when the request lacks the
    /// admin token (`nil`: go on).
    func register(on router: Router<BasicRequestContext>, authorize: @escaping @Sendable (Request) -> Response?)
    /// Checks reported by `/healthz` (a warning does not fail it).
    func healthChecks() async -> [AdminHealthCheck]
}

/// One `/healthz` check.
public struct AdminHealthCheck: Sendable {
    public var name: String
    /// Why it failed (`nil`: passed).
    public var failure: String?
    /// A warning shown with `?verbose` (`[!]name warn: …`) that does not fail the check.
    public var warning: String?

    public init(name: String, failure: String? = nil, warning: String? = nil) {
        self.name = name
        self.failure = failure
        self.warning = warning
    }
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
