import AegisKV
import Crypto

/// Settings that bound memory and choose codecs for backup I/O.
public struct BackupSettings: Sendable, Hashable {
    /// The compression of new files.
    public var compression: BackupCompression
    /// The codec level (`nil`: the codec's default).
    public var level: Int?
    /// The size of the pieces read, compressed, hashed and written (default 1 MiB):
    /// memory per stream is a small multiple of it.
    public var chunkSize: Int

    public init(compression: BackupCompression = .zstd, level: Int? = nil, chunkSize: Int = 1 << 20) {
        self.compression = compression
        self.level = level
        self.chunkSize = max(chunkSize, 4096)
    }
}

/// `StateMachine.digest()` (the SHA-256 of the canonical snapshot bytes) in hexadecimal,
/// hashed with swift-crypto (BoringSSL's SHA-256, several times faster than the pure
/// Swift one `AegisKV` uses to stay dependency-free); equal by definition, and the tests
/// compare the two.
func stateDigest(_ machine: StateMachine) -> String {
    var hash = Crypto.SHA256()
    for chunk in machine.snapshotChunks() { hash.update(data: chunk) }
    return hex(hash.finalize())
}

/// How far a long operation is (for progress bars).
public struct BackupProgress: Sendable, Hashable {
    /// `backup`, `verify` or `restore`.
    public var operation: String
    /// Bytes processed so far (raw bytes for a backup, stored bytes for a read).
    public var bytes: UInt64
    /// The total, when known in advance (reads).
    public var totalBytes: UInt64?
}

/// Adds up bytes and reports them (one per operation).
final class ProgressCounter: @unchecked Sendable {
    // Safety: used by one task at a time (the operation that made it).
    private let operation: String
    private let total: UInt64?
    private let report: (@Sendable (BackupProgress) -> Void)?
    private var done: UInt64 = 0

    init(_ operation: String, total: UInt64?, report: (@Sendable (BackupProgress) -> Void)?) {
        self.operation = operation
        self.total = total
        self.report = report
    }

    func add(_ count: Int) {
        done += UInt64(count)
        report?(BackupProgress(operation: operation, bytes: done, totalBytes: total))
    }
}

/// Writes one stored file: raw bytes in, hashed, compressed, hashed again, streamed to
/// the target.
final class StoredFileWriter {
    private let name: String
    private let role: BackupFile.Role
    private let compression: BackupCompression
    private let compressor: any StreamCompressor
    private let writer: any BackupObjectWriter
    private var rawHash = Crypto.SHA256()
    private var storedHash = Crypto.SHA256()
    private var rawSize: UInt64 = 0
    private var storedSize: UInt64 = 0
    private var pending: [[UInt8]] = []
    private let progress: ProgressCounter?

    init(target: any BackupTarget, folder: String, name: String, role: BackupFile.Role,
         settings: BackupSettings, progress: ProgressCounter? = nil) async throws(BackupError) {
        self.progress = progress
        self.name = name
        self.role = role
        compression = settings.compression
        compressor = try settings.compression.makeCompressor(level: settings.level, file: name)
        writer = try await target.makeWriter(folder + "/" + name)
    }

    /// Appends raw bytes.
    func write(_ raw: [UInt8]) async throws(BackupError) {
        rawHash.update(data: raw)
        rawSize += UInt64(raw.count)
        progress?.add(raw.count)
        try compressor.compress(raw, final: false) { pending.append($0) }
        try await flush()
    }

    private func flush() async throws(BackupError) {
        for piece in pending {
            storedHash.update(data: piece)
            storedSize += UInt64(piece.count)
            try await writer.write(piece)
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Ends the stream and commits the object; returns its manifest entry.
    func finish() async throws(BackupError) -> BackupFile {
        try compressor.compress([], final: true) { pending.append($0) }
        try await flush()
        try await writer.commit()
        return BackupFile(name: name, role: role, compression: compression, size: storedSize,
                          sha256: hex(storedHash.finalize()), rawSize: rawSize, rawSHA256: hex(rawHash.finalize()))
    }

    func abort() async { await writer.abort() }
}

/// Reads stored files back, checking size and SHA-256 of the stored bytes and of the
/// decompressed bytes against the manifest.
enum StoredFileReader {
    /// Streams the decompressed bytes of `file` (of the backup in `folder`) to `body`,
    /// then checks the checksums. `body` must not keep effects until this returns: on a
    /// mismatch it throws after the last piece.
    static func read(_ file: BackupFile, folder: String, target: any BackupTarget, chunkSize: Int,
                     progress: ProgressCounter? = nil,
                     _ body: ([UInt8]) throws(BackupError) -> Void) async throws(BackupError) {
        let label = folder + "/" + file.name
        let decompressor = try file.compression.makeDecompressor(file: label)
        var storedHash = Crypto.SHA256(), rawHash = Crypto.SHA256()
        var storedSize: UInt64 = 0, rawSize: UInt64 = 0
        var decodeError: BackupError?
        try await target.read(label, chunkSize: chunkSize) { (piece) throws(BackupError) in
            storedHash.update(data: piece)
            storedSize += UInt64(piece.count)
            progress?.add(piece.count)
            guard decodeError == nil else { return }
            do throws(BackupError) {
                try decompressor.decompress(piece) { (raw) throws(BackupError) in
                    rawHash.update(data: raw)
                    rawSize += UInt64(raw.count)
                    try body(raw)
                }
            } catch {
                decodeError = error  // keep reading: the checksum names the real problem
            }
        }
        let storedDigest = hex(storedHash.finalize())
        if storedSize != file.size || storedDigest != file.sha256 {
            throw .checksumMismatch(file: label, expected: "sha256:\(file.sha256) (\(file.size) bytes)",
                                    actual: "sha256:\(storedDigest) (\(storedSize) bytes)")
        }
        if let decodeError { throw decodeError }
        try decompressor.finish()
        let rawDigest = hex(rawHash.finalize())
        if rawSize != file.rawSize || rawDigest != file.rawSHA256 {
            throw .checksumMismatch(file: label + " (decompressed)",
                                    expected: "sha256:\(file.rawSHA256) (\(file.rawSize) bytes)",
                                    actual: "sha256:\(rawDigest) (\(rawSize) bytes)")
        }
    }

    /// Checks `file`'s stored size and checksum only (no decompression).
    static func checkStored(_ file: BackupFile, folder: String, target: any BackupTarget,
                            chunkSize: Int, progress: ProgressCounter? = nil) async throws(BackupError) {
        let label = folder + "/" + file.name
        var hash = Crypto.SHA256()
        var size: UInt64 = 0
        try await target.read(label, chunkSize: chunkSize) { piece in
            hash.update(data: piece)
            size += UInt64(piece.count)
            progress?.add(piece.count)
        }
        let digest = hex(hash.finalize())
        if size != file.size || digest != file.sha256 {
            throw .checksumMismatch(file: label, expected: "sha256:\(file.sha256) (\(file.size) bytes)",
                                    actual: "sha256:\(digest) (\(size) bytes)")
        }
    }
}
