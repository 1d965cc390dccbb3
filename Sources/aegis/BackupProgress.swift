import AegisBackup
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Prints backup progress on standard error: a bar with bytes/s and ETA redrawn in
/// place on a terminal, a plain line every second otherwise, a JSON line per second with
/// `--json`.
final class ProgressPrinter: @unchecked Sendable {
    // Safety: reports come from one operation at a time; the lock guards the fields.
    private let lock = NSLock()
    private let json: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private let started = Date()
    private var lastPrint = Date.distantPast
    private var lastOperation = ""

    init(json: Bool) { self.json = json }

    func report(_ p: BackupProgress) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        let finished = p.totalBytes.map { p.bytes >= $0 } ?? false
        guard p.operation != lastOperation || finished || now.timeIntervalSince(lastPrint) >= (terminal ? 0.1 : 1) else { return }
        lastOperation = p.operation
        lastPrint = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(p.bytes) / elapsed
        var line: String
        if json {
            line = #"{"progress":"\#(p.operation)","bytes":\#(p.bytes),"total":\#(p.totalBytes.map(String.init) ?? "null"),"bytes_per_s":\#(Int(rate))}"# + "\n"
        } else {
            line = "\(p.operation): \(Self.size(Double(p.bytes)))"
            if let total = p.totalBytes, total > 0 {
                let fraction = min(1, Double(p.bytes) / Double(total))
                let eta = rate > 0 ? Double(total - min(total, p.bytes)) / rate : 0
                let bar = String(repeating: "#", count: Int(fraction * 30)) + String(repeating: " ", count: 30 - Int(fraction * 30))
                line = "\(p.operation) [\(bar)] \(Int(fraction * 100))% \(Self.size(Double(p.bytes))) of \(Self.size(Double(total))), "
                    + "\(Self.size(rate))/s, ETA \(Int(eta.rounded())) s"
            } else {
                line += ", \(Self.size(rate))/s"
            }
            line = terminal ? "\r" + line + "\u{1B}[K" : line + "\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Ends the redrawn line on a terminal.
    func finish() {
        if terminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func size(_ bytes: Double) -> String {
        bytes >= 1e9 ? String(format: "%.2f GB", bytes / 1e9) : bytes >= 1e6 ? String(format: "%.1f MB", bytes / 1e6)
            : String(format: "%.0f kB", bytes / 1e3)
    }
}
