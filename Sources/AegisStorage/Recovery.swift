public import AegisRaft
import Foundation

/// A segment as the writer tracks it.
struct SegmentInfo {
    var name: SegmentName
    var path: String
    /// The highest entry index written into the segment (0 if none); the segment may be
    /// deleted once the log is compacted past it.
    var maxEntryIndex: LogIndex
}

/// The end of the last segment that recovery cut off because it was never acknowledged.
public struct TornTail: Sendable, Hashable, CustomStringConvertible {
    /// The segment file.
    public var file: String
    /// Where the cut was made (the new file size).
    public var offset: Int
    /// How many bytes were discarded.
    public var discardedBytes: Int
    /// What the discarded bytes looked like.
    public var reason: String

    public var description: String {
        "truncated a torn tail of \(discardedBytes) bytes at offset \(offset) of \(file) (\(reason)); "
            + "it was never acknowledged"
    }
}

/// What recovery found when the storage was opened.
public struct RecoveryReport: Sendable, Hashable {
    /// How many segment files were read.
    public var segments: Int
    /// The first and last recovered log indexes.
    public var firstIndex: LogIndex, lastIndex: LogIndex
    /// The recovered hard state.
    public var hardState: RaftState
    /// The index of the snapshot the log continues from (0 if none).
    public var snapshotIndex: LogIndex
    /// The torn tail that was truncated, if any (also stray bytes found in the
    /// preallocated space after the last record, which are not data).
    public var tornTail: TornTail?
    /// Damaged records that the snapshot already covered: dropped, not refused. Each
    /// report names the file, offset and the (covered) index range.
    public var droppedBelowSnapshot: [CorruptionReport] = []
    /// What recovery warns about, in words (one line per dropped record).
    public var warnings: [String] = []
}

/// What `Recovery.recover` rebuilds from a directory.
struct RecoveredWAL {
    var log: LogState
    var segments: [SegmentInfo]
    /// Byte size of the last segment after any torn tail was removed.
    var lastSegmentSize: Int
    /// The last segment's file length: larger than `lastSegmentSize` when it ends in
    /// preallocated (zero-filled) space.
    var lastSegmentLength: Int
    var tornTail: TornTail?
    /// Damaged records covered by the snapshot, dropped with a warning.
    var droppedBelowSnapshot: [CorruptionReport] = []
}

/// Replays records into a `LogState`, tolerating the hole that deleting compacted
/// segments leaves before the first remaining segment, as long as a later compaction
/// or snapshot record covers it.
struct Replayer {
    struct Gap {
        var first: LogIndex, last: LogIndex
        var file: String, offset: Int
    }

    var log = LogState()
    var gaps: [Gap] = []

    mutating func apply(_ record: WALRecord, file: String, offset: Int) {
        switch record {
        case .segmentHeader:
            break
        case .entry(let entry):
            if entry.index <= log.offset { return }
            if entry.index > log.lastIndex + 1 {
                gaps.append(Gap(first: log.lastIndex + 1, last: entry.index - 1, file: file, offset: offset))
                log.reset(to: entry.index - 1, term: 0)
            }
            log.append([entry])
        case .hardState(let state):
            log.hardState = state
        case let .snapshot(metadata, resetsLog):
            log.snapshot = metadata
            if resetsLog {
                log.reset(to: metadata.index, term: metadata.term)
                gaps.removeAll()
            }
        case let .compact(index, term):
            if index > log.lastIndex {
                log.reset(to: index, term: term)
            } else if index == log.offset {
                log.setOffsetTerm(term)
            } else {
                log.compact(upTo: index)
            }
            gaps.removeAll { $0.last <= index }
        }
    }
}

/// Rebuilds the log from the segment files and classifies any damage.
enum Recovery {
    static func recover(directory: String, fileSystem: any FileSystem,
                        log: (@Sendable (String) -> Void)?) throws(StorageError) -> RecoveredWAL? {
        let names = try fileSystem.list(directory)
        for name in names where name.hasSuffix(".tmp") {
            do {
                try fileSystem.remove(directory + "/" + name)
            } catch .io(_, _, let code) where code == ENOENT {
                continue  // already gone (its writer removed it)
            }
            log?("removed an unfinished temporary file \(name)")
        }
        var segmentNames = names.compactMap(SegmentName.init(fileName:)).sorted()
        var replayer = Replayer()
        var segments: [SegmentInfo] = []
        var tornTail: TornTail?
        var lastSize = 0, lastLength = 0
        var ledger = CoveredDamageLedger()
        while let name = segmentNames.first {
            segmentNames.removeFirst()
            let path = directory + "/" + name.fileName
            if let previous = segments.last, previous.name.sequence + 1 != name.sequence {
                throw .corruption(CorruptionReport(
                    file: path, offset: 0, firstLostIndex: replayer.log.lastIndex + 1,
                    lastLostIndex: name.firstIndex > 0 ? name.firstIndex - 1 : nil,
                    reason: "segment files \(previous.name.sequence + 1)...\(name.sequence - 1) are missing "
                        + "(a gap between \(previous.name.fileName) and \(name.fileName))"))
            }
            let bytes = try fileSystem.readAll(path)
            let isLast = segmentNames.isEmpty
            let scan = SegmentScanner.scan(bytes, isLastSegment: isLast)
            var info = SegmentInfo(name: name, path: path, maxEntryIndex: 0)
            try checkHeader(scan, name: name, path: path, isLast: isLast,
                            nextFirstIndex: segmentNames.first?.firstIndex, lastIndex: replayer.log.lastIndex)
            if scan.records.isEmpty {
                // The file ends inside its own header: a segment being created when the
                // process stopped. Nothing in it was ever acknowledged.
                try fileSystem.remove(path)
                try fileSystem.syncDirectory(directory)
                log?("removed \(name.fileName): its header was never completed (\(bytes.count) bytes)")
                continue
            }
            var damages = scan.damages[...]
            for (position, item) in scan.records.enumerated() {
                while let damage = damages.first, damage.recordsBefore == position {
                    damages.removeFirst()
                    // Records follow it in this segment: it is not the tail.
                    ledger.note(report(damage, path: path, lastIndex: replayer.log.lastIndex,
                                       nextFirstIndex: segmentNames.first?.firstIndex),
                                firstLost: replayer.log.lastIndex + 1, isSingleRecord: damage.isSingleRecord)
                }
                if case .entry(let entry) = item.record { info.maxEntryIndex = max(info.maxEntryIndex, entry.index) }
                ledger.observe(item.record)
                replayer.apply(item.record, file: path, offset: item.offset)
            }
            if let damage = damages.first {
                let found = report(damage, path: path, lastIndex: replayer.log.lastIndex,
                                   nextFirstIndex: segmentNames.first?.firstIndex)
                if !damage.isTornTail {
                    // The rest of an earlier segment can be skipped if the snapshot covers
                    // it: the next segment starts with a full checkpoint.
                    if isLast { throw .corruption(found) }
                    ledger.note(found, firstLost: replayer.log.lastIndex + 1, isSingleRecord: false)
                } else {
                    try fileSystem.truncateDurably(path, to: scan.validEnd)
                    let tail = TornTail(file: path, offset: scan.validEnd, discardedBytes: bytes.count - scan.validEnd,
                                        reason: damage.reason)
                    log?(tail.description)
                    tornTail = tail
                }
            }
            lastSize = scan.validEnd
            lastLength = tornTail?.file == path ? scan.validEnd : bytes.count
            segments.append(info)
        }
        if segments.isEmpty { return nil }
        let dropped = try ledger.settle(&replayer)
        for report in dropped { log?(report.droppedWarning(snapshotIndex: replayer.log.snapshot.index)) }
        try checkFinal(replayer, lastPath: segments[segments.count - 1].path, lastSize: lastSize)
        return RecoveredWAL(log: replayer.log, segments: segments, lastSegmentSize: lastSize,
                            lastSegmentLength: lastLength, tornTail: tornTail, droppedBelowSnapshot: dropped)
    }

    /// The first record must be a header that matches the file name.
    private static func checkHeader(_ scan: SegmentScan, name: SegmentName, path: String, isLast: Bool,
                                    nextFirstIndex: LogIndex?, lastIndex: LogIndex) throws(StorageError) {
        guard let first = scan.records.first else {
            if let damage = scan.damage, !damage.isTornTail {
                throw .corruption(report(damage, path: path, lastIndex: lastIndex, nextFirstIndex: nextFirstIndex))
            }
            if !isLast {
                throw .corruption(CorruptionReport(
                    file: path, offset: 0, firstLostIndex: lastIndex + 1,
                    lastLostIndex: nextFirstIndex.map { $0 - 1 }, reason: "an empty segment before the last one"))
            }
            return
        }
        guard case let .segmentHeader(sequence, firstIndex) = first.record,
              sequence == name.sequence, firstIndex == name.firstIndex else {
            throw .corruption(CorruptionReport(
                file: path, offset: 0, firstLostIndex: lastIndex + 1, lastLostIndex: nil,
                reason: "the segment header does not match the file name \(name.fileName)"))
        }
    }

    private static func report(_ damage: SegmentDamage, path: String, lastIndex: LogIndex,
                               nextFirstIndex: LogIndex?) -> CorruptionReport {
        var lastLost: LogIndex?
        // A damaged file may name index 0 next (fuzz-wal): no lost range to report then.
        if let next = damage.nextValidIndex ?? nextFirstIndex, next > 0 { lastLost = next - 1 }
        var reason = damage.reason
        if let next = damage.nextValidOffset { reason += "; valid records follow at offset \(next)" }
        return CorruptionReport(file: path, offset: damage.offset, firstLostIndex: lastIndex + 1,
                                lastLostIndex: lastLost, reason: reason)
    }

    /// After replay: no unexplained hole, and the commit index is in the log.
    private static func checkFinal(_ replayer: Replayer, lastPath: String, lastSize: Int) throws(StorageError) {
        if let gap = replayer.gaps.first {
            throw .corruption(CorruptionReport(
                file: gap.file, offset: gap.offset, firstLostIndex: gap.first, lastLostIndex: gap.last,
                reason: "entries \(gap.first)...\(gap.last) are missing before this record"))
        }
        let log = replayer.log
        if log.hardState.commitIndex > log.lastIndex {
            throw .corruption(CorruptionReport(
                file: lastPath, offset: lastSize, firstLostIndex: log.lastIndex + 1,
                lastLostIndex: log.hardState.commitIndex,
                reason: "the hard state's commit index \(log.hardState.commitIndex) is beyond the last entry \(log.lastIndex)"))
        }
    }
}
