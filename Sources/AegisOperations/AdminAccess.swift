public import AegisServer
public import Foundation
public import NIOSSL

/// A `host:port` address (IPv6 as `[::1]:7001`; an empty host is 127.0.0.1).
public struct HostPort: Sendable, Hashable {
    public var host: String
    public var port: Int

    /// Parses `text`; `nil` when it is not `host:port` with a port in 1-65535.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1 ... 65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "127.0.0.1" : host
        self.port = port
    }
}

/// How to reach a cluster's admin API: its bearer token (`--admin-token`) and a TLS
/// client context trusting its CA (`nil`: plain HTTP, for loopback).
public struct AdminAccess: Sendable {
    public var token: String?
    public var tls: NIOSSLContext?

    public init(token: String? = nil, tls: NIOSSLContext? = nil) {
        self.token = token
        self.tls = tls
    }

    /// Sends `method path` (with a `body` of `contentType`, if any) to the admin API at
    /// `address` and returns the body of a 2xx answer. Anything else throws
    /// `AdminAPIError`: with the server's error text for a non-2xx answer.
    public func request(_ method: String, _ path: String, at address: String, body: Data? = nil,
                        contentType: String = "application/json", timeout: Duration = .seconds(30)) async throws -> Data {
        guard let target = HostPort(address) else {
            throw AdminAPIError("'\(address)' is not an address: use host:port, for example 127.0.0.1:7001")
        }
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if body != nil { headers.append(("Content-Type", contentType)) }
        let response: AdminHTTPClient.Response
        do {
            response = try await AdminHTTPClient.send(method: method, host: target.host, port: target.port, path: path,
                                                      headers: headers, body: body, tls: tls, timeout: timeout)
        } catch let error as AdminAPIError {
            throw error
        } catch {
            throw AdminAPIError("cannot reach the admin API at \(tls == nil ? "http" : "https")://\(address): \(error). "
                                + "Is the node running\(tls == nil ? "" : " with TLS (else --no-tls)")?")
        }
        guard (200 ..< 300).contains(response.status) else {
            let message = (try? JSONDecoder().decode(AdminErrorDocument.self, from: response.body))?.error
                ?? String(decoding: response.body.prefix(4096), as: UTF8.self)
            throw AdminAPIError("HTTP \(response.status): \(message)", status: response.status)
        }
        return response.body
    }

    /// POSTs `path` to each node of a cluster (`addresses`, comma-separated) until one
    /// does it (its leader: the others refuse or do not answer); returns the decoded
    /// answer and the address that gave it.
    public func post<Answer: Decodable>(_ addresses: String, _ path: String,
                                        as type: Answer.Type = DRTransitioned.self) async throws -> (Answer, String) {
        var failures: [String] = []
        for address in addresses.split(separator: ",").map(String.init) {
            do {
                return (try JSONDecoder().decode(Answer.self, from: try await request("POST", path, at: address)), address)
            } catch {
                failures.append("\(address): \(error)")
            }
        }
        throw AdminAPIError("no node of \(addresses) did it: \(failures.joined(separator: "; "))")
    }

    /// The DR document (`GET /v1/dr`) of a cluster's leader, else of the first node of
    /// `addresses` (comma-separated) that answers.
    public func drDocument(_ addresses: String) async throws -> DRDocument {
        var fallback: DRDocument?
        for address in addresses.split(separator: ",").map(String.init) {
            guard let data = try? await request("GET", "/v1/dr", at: address),
                  let document = try? JSONDecoder().decode(DRDocument.self, from: data) else { continue }
            if document.isLeader { return document }
            fallback = fallback ?? document
        }
        guard let fallback else { throw AdminAPIError("no node of \(addresses) answered /v1/dr") }
        return fallback
    }
}

/// Percent-encodes a query parameter value (addresses in the DR calls' queries).
public func percentEscaped(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? text
}
