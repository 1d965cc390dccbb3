import Crypto
import Foundation

/// AWS Signature Version 4 for S3 requests (header-based, signed payload hash).
struct S3Signer: Sendable {
    let accessKey: String
    let secretKey: String
    let region: String
    let service = "s3"

    /// The headers to add to a request: `x-amz-date`, `x-amz-content-sha256` and
    /// `Authorization`. `headers` are the other headers to sign (lower-case names),
    /// `host` included.
    func sign(method: String, path: String, query: [(String, String)], headers: [String: String],
              payloadSHA256: String, date: Date) -> [(String, String)] {
        let (amzDate, day) = Self.timestamps(date)
        var all = headers
        all["x-amz-date"] = amzDate
        all["x-amz-content-sha256"] = payloadSHA256
        let names = all.keys.map { $0.lowercased() }.sorted()
        let canonicalHeaders = names.map { "\($0):\((all[$0] ?? "").trimmingCharacters(in: .whitespaces))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalQuery = query.map { (Self.encode($0.0), Self.encode($0.1)) }.sorted { $0 < $1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        let canonicalRequest = [method, Self.encode(path, keepSlash: true), canonicalQuery, canonicalHeaders,
                                signedHeaders, payloadSHA256].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        var key = SymmetricKey(data: Array(("AWS4" + secretKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return [("x-amz-date", amzDate), ("x-amz-content-sha256", payloadSHA256),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), "
                    + "Signature=\(signature)")]
    }

    /// `yyyyMMddTHHmmssZ` and `yyyyMMdd` in UTC.
    static func timestamps(_ date: Date) -> (String, String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ v: Int?, _ n: Int = 2) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let day = pad(c.year, 4) + pad(c.month) + pad(c.day)
        return (day + "T" + pad(c.hour) + pad(c.minute) + pad(c.second) + "Z", day)
    }

    /// RFC 3986 percent-encoding of everything but unreserved characters (and `/` in paths).
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) || (keepSlash && c == "/") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// SHA-256 of the empty payload.
    static let emptySHA256 = hex(SHA256.hash(data: [UInt8]()))
}
