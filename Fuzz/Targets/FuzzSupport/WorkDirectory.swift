#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A directory of this process for the files a target writes: `$AEGIS_FUZZ_TMP` (a
/// tmpfs when the script can make one) or /tmp, then `<name>-<pid>`.
public func fuzzWorkDirectory(_ name: String) -> String {
    let base = getenv("AEGIS_FUZZ_TMP").map { String(cString: $0) } ?? "/tmp"
    let path = "\(base)/\(name)-\(getpid())"
    mkdir(base, 0o755)
    mkdir(path, 0o755)
    return path
}
