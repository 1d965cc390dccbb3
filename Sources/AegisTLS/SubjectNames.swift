internal import SwiftASN1
internal import X509
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Checks names that go into certificates and turns host strings into subject
/// alternative names.
enum SubjectNames {
    /// The longest DNS name (RFC 1035).
    static let maximumNameLength = 253

    /// Checks that `name` can be a DNS name in a certificate and a file name:
    /// ASCII letters, digits, `-`, `_` and `.`, not starting with `.` or `-`,
    /// at most 253 characters.
    ///
    /// - Parameter role: what the name is, for the error message ("node ID", "host").
    static func validate(_ name: String, role: String) throws(TLSError) {
        guard !name.isEmpty, name.utf8.count <= maximumNameLength else {
            throw TLSError(.invalidArgument, "\(role) '\(name)' must be 1 to \(maximumNameLength) characters")
        }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }
        guard allowed, let first = name.first, first != ".", first != "-" else {
            throw TLSError(.invalidArgument,
                           "\(role) '\(name)' may hold only letters, digits, '-', '_' and '.', and may not start with '.' or '-'")
        }
    }

    /// The binary form of an IPv4 or IPv6 address, or `nil` when `host` is not one.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// The subject alternative names of a node certificate: the node ID as a DNS name,
    /// then each host as an IP address or a DNS name (duplicates removed).
    static func alternativeNames(identity: String, hosts: [String]) throws(TLSError) -> [GeneralName] {
        try validate(identity, role: "name")
        var names: [GeneralName] = [.dnsName(identity)]
        var seen: Set<String> = [identity]
        for host in hosts {
            guard seen.insert(host).inserted else { continue }
            if let bytes = ipAddressBytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
            } else {
                try validate(host, role: "host")
                names.append(.dnsName(host))
            }
        }
        return names
    }
}
