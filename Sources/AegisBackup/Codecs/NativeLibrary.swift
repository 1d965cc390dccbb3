#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened at run time with `dlopen`, whose C functions are called
/// through `@convention(c)` function types looked up with `dlsym`.
///
/// Why not a SwiftPM system-library target: the runtime libraries (`libz.so.1`,
/// `liblz4.so.1`, `libzstd.so.1`) are on every Debian system, the headers (`-dev`
/// packages) are not; loading at run time keeps `swift build` and `swift test` working on
/// a fresh machine, and a missing library is a clear error for the one codec that needs
/// it rather than a link failure of the whole program.
final class NativeLibrary: @unchecked Sendable {
    // Safety: the handle is never closed and only read after init.
    private let handle: UnsafeMutableRawPointer
    let codec: String

    /// Opens the first of `names` that loads.
    init(codec: String, names: [String]) throws(BackupError) {
        var errors: [String] = []
        for name in names {
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) {
                self.handle = handle
                self.codec = codec
                return
            }
            if let message = dlerror() { errors.append(String(cString: message)) }
        }
        throw .codecUnavailable(codec: codec, detail: errors.joined(separator: "; "))
    }

    /// The function `name`, as the C function type `type`.
    func function<T>(_ name: String, as type: T.Type) throws(BackupError) -> T {
        guard let pointer = dlsym(handle, name) else {
            throw .codecUnavailable(codec: codec, detail: "the library has no function \(name)")
        }
        return unsafeBitCast(pointer, to: type)
    }
}

/// The output buffer size of every codec: each decompressed or compressed piece handed
/// on is at most this large (bounded memory whatever the compression ratio).
let codecOutputChunk = 1 << 20
