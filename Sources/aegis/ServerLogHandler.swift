import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The server's log lines on standard error, one `write` per line:
///
///     2026-12-01T00:11:04.123Z warning aegis: node=n2 role=leader [AegisReplication] message
///
/// UTC timestamps with milliseconds (swift-log's `StreamLogHandler` prints whole
/// seconds, too coarse to order a leader handover or a latency spike), the level, the
/// logger's label, the metadata sorted by key, the source module and the message.
struct ServerLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var line = Self.timestamp()
        line += " \(event.level) \(label):"
        for key in all.keys.sorted() { line += " \(key)=\(all[key].map { "\($0)" } ?? "")" }
        line += " [\(event.source)] \(event.message)\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            guard var base = buffer.baseAddress else { return }
            var left = buffer.count
            while left > 0 {
                let n = write(STDERR_FILENO, base, left)
                if n > 0 {
                    left -= n
                    base += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, from the real-time clock.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec),
                      Int(now.tv_nsec / 1_000_000))
    }
}
