import AegisHTTP
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A repository in an S3-compatible object store (AWS S3, MinIO, Ceph, moto), addressed
/// path-style (`<endpoint>/<bucket>/<prefix>/<name>`), signed with AWS Signature V4
/// over AegisHTTP's HTTP/1.1 client (one connection per request; `https` endpoints are
/// checked against the system's trust store, or the CA file in `AWS_CA_BUNDLE`).
///
/// Objects up to `partSize` are one `PUT`; larger ones a multipart upload (parts of
/// `partSize`, at least 5 MiB as S3 requires), completed on `commit` and aborted on
/// failure, so a half-written object is never visible. Reads are ranged `GET`s of
/// `partSize` bytes. Every request is retried on connection errors, 5xx and 429 with
/// exponential backoff (`retries`, from 100 ms doubling, jittered). Payload hashes are
/// signed (`x-amz-content-sha256`), so the store refuses a corrupted upload; downloads
/// are checked against the manifest's SHA-256 by the repository.
public struct S3Target: BackupTarget {
    /// The endpoint, e.g. `http://127.0.0.1:5000` or `https://s3.eu-west-1.amazonaws.com`.
    public let endpoint: String
    public let bucket: String
    /// The key prefix of the repository ("" or ending without `/`).
    public let prefix: String
    public let region: String
    let signer: S3Signer
    /// The size of upload parts and download ranges (default 8 MiB): memory per stream.
    public var partSize: Int
    /// Attempts after the first for each request (default 4).
    public var retries: Int
    /// The endpoint parsed, with the TLS context of an `https` one; a bad endpoint or an
    /// unreadable CA file is reported by the first request.
    let connection: Result<Connection, BackupError>

    struct Connection: Sendable {
        var endpoint: HTTPEndpoint
        var tls: NIOSSLContext?
    }

    public var location: String { "s3://\(bucket)/\(prefix) at \(endpoint)" }

    public init(endpoint: String, bucket: String, prefix: String = "", region: String = "us-east-1",
                accessKey: String, secretKey: String, partSize: Int = 8 << 20, retries: Int = 4,
                caBundle: String? = nil) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        connection = Self.connect(endpoint, caBundle: caBundle)
        self.bucket = bucket
        self.prefix = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.region = region
        signer = S3Signer(accessKey: accessKey, secretKey: secretKey, region: region)
        self.partSize = max(partSize, 5 << 20)
        self.retries = max(0, retries)
    }

    /// Parses `s3://bucket/prefix`, with the endpoint, region and credentials from the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    public static func fromURL(_ url: String, environment: [String: String]? = nil) throws(BackupError) -> S3Target {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard url.hasPrefix("s3://") else { throw .invalidArgument("'\(url)' is not s3://bucket/prefix") }
        let rest = url.dropFirst(5)
        let parts = rest.split(separator: "/", maxSplits: 1).map(String.init)
        guard let bucket = parts.first, !bucket.isEmpty else { throw .invalidArgument("'\(url)' names no bucket") }
        guard let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"] else {
            throw .invalidArgument("an s3:// repository needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        let endpoint = environment["AWS_ENDPOINT_URL"] ?? "https://s3.\(region).amazonaws.com"
        return S3Target(endpoint: endpoint, bucket: bucket, prefix: parts.count > 1 ? parts[1] : "", region: region,
                        accessKey: key, secretKey: secret, caBundle: environment["AWS_CA_BUNDLE"])
    }

    private static func connect(_ url: String, caBundle: String?) -> Result<Connection, BackupError> {
        let endpoint: HTTPEndpoint
        do {
            endpoint = try HTTPEndpoint(parsing: url)
        } catch {
            return .failure(.invalidArgument("the S3 endpoint \(error.description)"))
        }
        guard endpoint.isTLS else { return .success(Connection(endpoint: endpoint, tls: nil)) }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caBundle { configuration.trustRoots = .file(caBundle) }
        do {
            return .success(Connection(endpoint: endpoint, tls: try NIOSSLContext(configuration: configuration)))
        } catch {
            return .failure(.invalidArgument("no TLS context for \(url)\(caBundle.map { " with CA file \($0)" } ?? ""): \(error)"))
        }
    }

    func key(_ name: String) -> String { prefix.isEmpty ? name : prefix + "/" + name }

    // MARK: Requests

    struct Answer {
        var status: UInt
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// One signed request, retried with backoff on connection errors, 5xx and 429.
    func send(_ method: HTTPMethod, key: String?, query: [(String, String)] = [], body: [UInt8] = [],
              headers extra: [(String, String)] = [], maxResponse: Int = 64 << 20) async throws(BackupError) -> Answer {
        let connection = try connection.get()
        let path = "/" + bucket + (key.map { "/" + $0 } ?? "")
        let payloadHash = body.isEmpty ? S3Signer.emptySHA256 : hex(SHA256.hash(data: body))
        var delay = Duration.milliseconds(100)
        var lastError = ""
        for attempt in 0...retries {
            if Task.isCancelled {
                throw .target(operation: "\(method.rawValue) \(path)", name: location, detail: "cancelled")
            }
            if attempt > 0 {
                let jitter = Double.random(in: 0.5...1.5)
                try? await Task.sleep(for: delay * jitter)
                delay *= 2
            }
            var signedHeaders = ["host": connection.endpoint.authority]
            for (name, value) in extra { signedHeaders[name.lowercased()] = value }
            let auth = signer.sign(method: method.rawValue, path: path, query: query, headers: signedHeaders,
                                   payloadSHA256: payloadHash, date: Date())
            let queryText = query.map { S3Signer.encode($0.0) + "=" + S3Signer.encode($0.1) }.joined(separator: "&")
            let uri = S3Signer.encode(path, keepSlash: true) + (query.isEmpty ? "" : "?" + queryText)
            do {
                let response = try await HTTP1Client.send(
                    method: method, host: connection.endpoint.host, port: connection.endpoint.port, path: uri,
                    headers: [("Host", connection.endpoint.authority)] + extra + auth,
                    body: body.isEmpty ? nil : ByteBuffer(bytes: body), tls: connection.tls,
                    timeout: .seconds(60), maxResponseBytes: maxResponse)
                let answer = Answer(status: UInt(response.status), headers: response.headers,
                                    body: Array(response.body.readableBytesView))
                if answer.status >= 500 || answer.status == 429 {
                    lastError = "HTTP \(answer.status): \(String(decoding: answer.body.prefix(300), as: UTF8.self))"
                    continue
                }
                return answer
            } catch {
                lastError = error.description
            }
        }
        throw .target(operation: "\(method.rawValue) \(path)", name: location,
                      detail: "gave up after \(retries + 1) attempts: \(lastError)")
    }

    func expect(_ answer: Answer, _ ok: ClosedRange<UInt>, _ operation: String, _ name: String) throws(BackupError) {
        guard ok.contains(answer.status) else {
            throw .target(operation: operation, name: name,
                          detail: "HTTP \(answer.status): \(String(decoding: answer.body.prefix(500), as: UTF8.self))")
        }
    }

    // MARK: BackupTarget

    /// Creates the bucket (for tests and first use; an existing bucket of ours is fine).
    public func createBucket() async throws(BackupError) {
        let answer = try await send(.PUT, key: nil)
        if answer.status == 409 { return }
        try expect(answer, 200...299, "create bucket", bucket)
    }

    public func makeWriter(_ name: String) async throws(BackupError) -> any BackupObjectWriter {
        S3ObjectWriter(target: self, key: key(name))
    }

    public func read(_ name: String, chunkSize: Int,
                     _ body: ([UInt8]) throws(BackupError) -> Void) async throws(BackupError) {
        var offset = 0
        while true {
            let answer = try await send(.GET, key: key(name), headers: [("Range", "bytes=\(offset)-\(offset + partSize - 1)")],
                                        maxResponse: partSize + 1)
            if answer.status == 404 { throw .damaged(file: name, detail: "missing from \(location)") }
            if answer.status == 416 && offset > 0 { return }  // the object ended exactly at a range boundary
            if answer.status == 416 { return }  // empty object
            try expect(answer, 200...299, "GET", name)
            var start = 0
            while start < answer.body.count {
                let end = min(answer.body.count, start + max(chunkSize, 4096))
                try body(Array(answer.body[start..<end]))
                start = end
            }
            offset += answer.body.count
            // 200 (the whole object) or a short 206: done. The total is in Content-Range.
            if answer.status == 200 || answer.body.count < partSize { return }
            if let range = answer.headers.first(name: "Content-Range"), let total = range.split(separator: "/").last
                .flatMap({ Int($0) }), offset >= total { return }
        }
    }

    public func list(prefix namePrefix: String) async throws(BackupError) -> [String] {
        var names: [String] = []
        var token: String?
        let fullPrefix = key(namePrefix)
        let strip = prefix.isEmpty ? 0 : prefix.count + 1
        repeat {
            var query = [("list-type", "2"), ("prefix", fullPrefix)]
            if let token { query.append(("continuation-token", token)) }
            let answer = try await send(.GET, key: nil, query: query)
            try expect(answer, 200...299, "list", fullPrefix)
            let xml = String(decoding: answer.body, as: UTF8.self)
            names += Self.elements("Key", in: xml).map { String($0.dropFirst(strip)) }
            token = Self.elements("IsTruncated", in: xml).first == "true"
                ? Self.elements("NextContinuationToken", in: xml).first : nil
        } while token != nil
        return names.sorted()
    }

    public func delete(_ name: String) async throws(BackupError) {
        let answer = try await send(.DELETE, key: key(name))
        if answer.status == 404 { return }
        try expect(answer, 200...299, "DELETE", name)
    }

    /// The text of every `<tag>…</tag>`, XML entities decoded.
    static func elements(_ tag: String, in xml: String) -> [String] {
        var result: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(tag)>"), let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            result.append(String(rest[open.upperBound..<close.lowerBound])
                .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
                .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
                .replacingOccurrences(of: "&amp;", with: "&"))
            rest = rest[close.upperBound...]
        }
        return result
    }
}

/// Buffers up to one part; one `PUT` for a small object, a multipart upload otherwise.
final class S3ObjectWriter: BackupObjectWriter {
    private let target: S3Target
    private let key: String
    private var buffer: [UInt8] = []
    private var uploadID: String?
    private var parts: [(number: Int, etag: String)] = []

    init(target: S3Target, key: String) {
        self.target = target
        self.key = key
    }

    func write(_ bytes: [UInt8]) async throws(BackupError) {
        buffer.append(contentsOf: bytes)
        while buffer.count >= target.partSize {
            let part = Array(buffer[0..<target.partSize])
            buffer.removeFirst(target.partSize)
            try await upload(part)
        }
    }

    private func upload(_ part: [UInt8]) async throws(BackupError) {
        if uploadID == nil {
            let answer = try await target.send(.POST, key: key, query: [("uploads", "")])
            try target.expect(answer, 200...299, "start multipart upload", key)
            guard let id = S3Target.elements("UploadId", in: String(decoding: answer.body, as: UTF8.self)).first else {
                throw .target(operation: "start multipart upload", name: key, detail: "no UploadId in the answer")
            }
            uploadID = id
        }
        let number = parts.count + 1
        let answer = try await target.send(.PUT, key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID ?? "")],
                                           body: part)
        try target.expect(answer, 200...299, "upload part \(number)", key)
        guard let etag = answer.headers.first(name: "ETag") else {
            throw .target(operation: "upload part \(number)", name: key, detail: "no ETag in the answer")
        }
        parts.append((number, etag))
    }

    func commit() async throws(BackupError) {
        guard let uploadID else {
            let answer = try await target.send(.PUT, key: key, body: buffer)
            try target.expect(answer, 200...299, "PUT", key)
            buffer = []
            return
        }
        if !buffer.isEmpty {
            try await upload(buffer)
            buffer = []
        }
        let xml = "<CompleteMultipartUpload>" + parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\($0.etag)</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let answer = try await target.send(.POST, key: key, query: [("uploadId", uploadID)], body: Array(xml.utf8))
        try target.expect(answer, 200...299, "complete multipart upload", key)
        // S3 may answer 200 with an error document.
        if String(decoding: answer.body, as: UTF8.self).contains("<Error>") {
            throw .target(operation: "complete multipart upload", name: key,
                          detail: String(decoding: answer.body.prefix(500), as: UTF8.self))
        }
    }

    func abort() async {
        buffer = []
        if let uploadID { _ = try? await target.send(.DELETE, key: key, query: [("uploadId", uploadID)]) }
    }
}
