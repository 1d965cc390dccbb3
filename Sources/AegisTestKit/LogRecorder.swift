public import Logging
import Foundation

/// Collects log lines, for tests that check what is logged and how often.
public final class LogRecorder: @unchecked Sendable {
    /// One logged line.
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let lock = NSLock()
    private var storage: [Record] = []

    public init() {}

    /// Every line so far, in order.
    public var records: [Record] { lock.withLock { storage } }

    /// A logger whose lines (at every level) go to this recorder.
    public func logger(label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    /// Whether a line's message or one of its metadata values contains `fragment`.
    public func contains(_ fragment: String) -> Bool {
        records.contains { $0.message.contains(fragment) || $0.metadata.values.contains { $0.contains(fragment) } }
    }

    fileprivate func append(_ record: Record) { lock.withLock { storage.append(record) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged: [String: String] = [:]
            for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { merged[key] = "\(value)" }
            recorder.append(Record(level: event.level, message: "\(event.message)", metadata: merged))
        }
    }
}
