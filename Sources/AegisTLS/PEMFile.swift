internal import Foundation
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Reads and writes the PEM files of certificates and keys.
enum PEMFile {
    /// The largest PEM file read; certificate files are a few kilobytes.
    static let maximumSize = 1 << 20
    /// Permissions of certificate files: readable by everyone.
    static let certificateMode: mode_t = 0o644
    /// Permissions of private key files: readable by the owner only.
    static let keyMode: mode_t = 0o600

    /// The text of the file at `path`.
    ///
    /// - Parameter what: what the file holds, for the error message ("CA certificate").
    static func read(_ path: String, what: String) throws(TLSError) -> String {
        let data: Data
        do {
            let url = URL(fileURLWithPath: path)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? NSNumber, size.intValue > maximumSize {
                throw TLSError(.unreadableFile, "\(what) file \(path) is larger than \(maximumSize) bytes; is it the right file?")
            }
            data = try Data(contentsOf: url)
        } catch let error as TLSError {
            throw error
        } catch {
            throw TLSError(.unreadableFile, "cannot read the \(what) file \(path): \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TLSError(.unreadableFile, "the \(what) file \(path) is not PEM text (expected '-----BEGIN ...')")
        }
        return text
    }

    /// Writes `text` to `path` with `mode`: to a temporary file in the same directory
    /// created with that mode (a key is never readable by others, not even briefly),
    /// flushed to disk, then renamed over `path`.
    ///
    /// - Throws: `TLSError(.writeFailed)` when `path` exists and `overwrite` is false,
    ///   or when the file cannot be written.
    static func writeAtomically(_ text: String, to path: String, mode: mode_t, overwrite: Bool) throws(TLSError) {
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw TLSError(.writeFailed, "\(path) exists; remove it or overwrite it (aegis certs: --force)")
        }
        let temporary = "\(path).tmp-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            throw TLSError(.writeFailed, "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        var written = 0
        var failure: String?
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                break
            }
            written += result
        }
        // The mode given to open is filtered by the umask; set it exactly.
        if failure == nil, fchmod(descriptor, mode) != 0 { failure = String(cString: strerror(errno)) }
        if failure == nil, fsync(descriptor) != 0 { failure = String(cString: strerror(errno)) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw TLSError(.writeFailed, "cannot write \(path): \(failure)")
        }
    }

    /// Creates `directory` (and its parents) when missing.
    static func createDirectory(_ directory: String) throws(TLSError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TLSError(.writeFailed, "cannot create the directory \(directory): \(error.localizedDescription)")
        }
    }

    /// `directory` joined with `name`.
    static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
