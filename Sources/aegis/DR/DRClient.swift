import AegisServer
import AegisStream
import Foundation
import NIOSSL

/// Calls to the other cluster's admin API: its DR document and the change stream.
struct DRClient: Sendable {
    /// The other cluster's admin token (`--dr-admin-token-file`), if it needs one.
    var token: String?
    /// A TLS client context trusting the other cluster's CA, or `nil` for plain HTTP
    /// (`--dr-plaintext`; loopback only).
    var tls: NIOSSLContext?

    enum PullResult {
        case frame(StreamFrame, bytes: Int)
        case refused(status: Int, why: String)
    }

    private var headers: [(String, String)] { token.map { [("Authorization", "Bearer \($0)")] } ?? [] }

    /// Asks `address` for the changes after `after`.
    func pull(address: String, after: UInt64, token leaseToken: LeaseToken?, lease: UInt64,
              limits: StreamLimits) async throws -> PullResult {
        let (host, port) = try parseAddress(address)
        var path = "/v1/stream/pull?after=\(after)&lease=\(lease)"
        if let leaseToken { path += "&token=\(leaseToken.text)" }
        let response = try await AdminHTTPClient.send(method: "GET", host: host, port: port, path: path, headers: headers,
                                                      body: nil, tls: tls, timeout: .seconds(10))
        guard response.status == 200 else {
            return .refused(status: response.status, why: String(decoding: response.body.prefix(512), as: UTF8.self))
        }
        let bytes = [UInt8](response.body)
        return .frame(try StreamFrame(decoding: bytes, limits: limits), bytes: bytes.count)
    }

    /// The DR document of the first of `addresses` that answers.
    func drDocument(addresses: [String]) async throws -> DRDocument {
        var failures: [String] = []
        for address in addresses {
            do {
                let (host, port) = try parseAddress(address)
                let response = try await AdminHTTPClient.send(method: "GET", host: host, port: port, path: "/v1/dr",
                                                              headers: headers, body: nil, tls: tls, timeout: .seconds(5))
                guard response.status == 200 else {
                    failures.append("\(address): HTTP \(response.status)")
                    continue
                }
                return try JSONDecoder().decode(DRDocument.self, from: response.body)
            } catch {
                failures.append("\(address): \(error)")
            }
        }
        throw ToolError("no DR document from \(addresses.joined(separator: ",")): \(failures.joined(separator: "; "))")
    }
}
