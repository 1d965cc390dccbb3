import AegisRaft

/// Damaged records found in the middle of the log that the snapshot may already cover.
///
/// Recovery does not refuse such a record at once: it notes it, keeps replaying, and
/// decides at the end. The damage is **covered** — dropped with a warning — only when
/// nothing it may have held can still matter:
///
/// 1. its extent is known: the record's own length leads to the next valid record
///    (`SegmentDamage.isSingleRecord`), or the rest of its segment is skipped and a later
///    segment follows (which starts with a full checkpoint);
/// 2. an entry follows it, so the entry indexes it may have held are bounded:
///    `firstLost...lastLost`, from the last entry before it + 1 to the index before the
///    first entry after it;
/// 3. a snapshot record replayed *after* it has an index `>= lastLost` (and > 0): the
///    snapshot was taken after the damaged record was written and holds its effect;
/// 4. it cannot have held the latest hard state (a vote): a hard state record is
///    replayed after it, or it is a single record and exactly one entry index is missing
///    (so that record was that entry).
///
/// Anything else is refused as before, with the report made when it was found.
struct CoveredDamageLedger {
    struct Noted {
        var report: CorruptionReport
        /// The first entry index the damage may have held.
        var firstLost: LogIndex
        var isSingleRecord: Bool
        /// What was replayed after it.
        var firstEntryAfter: LogIndex?
        var maxSnapshotAfter: LogIndex = 0
        var hardStateAfter = false

        /// The last entry index the damage may have held, once an entry followed it.
        var lastLost: LogIndex? {
            guard let next = firstEntryAfter, next > 0 else { return nil }
            return next - 1
        }

        var isCovered: Bool {
            guard let lastLost, maxSnapshotAfter > 0, maxSnapshotAfter >= lastLost else { return false }
            let cannotHoldHardState = hardStateAfter || (isSingleRecord && lastLost == firstLost)
            return cannotHoldHardState
        }
    }

    private(set) var noted: [Noted] = []

    mutating func note(_ report: CorruptionReport, firstLost: LogIndex, isSingleRecord: Bool) {
        noted.append(Noted(report: report, firstLost: firstLost, isSingleRecord: isSingleRecord))
    }

    /// Records what every noted damage is followed by.
    mutating func observe(_ record: WALRecord) {
        guard !noted.isEmpty else { return }
        for k in noted.indices {
            switch record {
            case .entry(let entry):
                if noted[k].firstEntryAfter == nil { noted[k].firstEntryAfter = entry.index }
            case .snapshot(let metadata, _):
                noted[k].maxSnapshotAfter = max(noted[k].maxSnapshotAfter, metadata.index)
            case .hardState:
                noted[k].hardStateAfter = true
            case .segmentHeader, .compact:
                break
            }
        }
    }

    /// Throws the first damage that is not covered; otherwise drops the covered ones from
    /// the replayed log (removes the holes they left and compacts the in-memory log up to
    /// the snapshot, which holds those entries) and returns their reports.
    func settle(_ replayer: inout Replayer) throws(StorageError) -> [CorruptionReport] {
        var dropped: [CorruptionReport] = []
        for damage in noted {
            guard damage.isCovered, let lastLost = damage.lastLost else { throw .corruption(damage.report) }
            replayer.gaps.removeAll { $0.first >= damage.firstLost && $0.last <= lastLost }
            var report = damage.report
            report.lastLostIndex = lastLost
            dropped.append(report)
        }
        if !dropped.isEmpty { replayer.log.compactToSnapshot() }
        return dropped
    }
}

extension LogState {
    /// Discards the entries up to the snapshot index, which the snapshot holds (the
    /// compaction point takes the snapshot's term).
    mutating func compactToSnapshot() {
        let index = snapshot.index
        if index <= offset {
            if index == offset { setOffsetTerm(snapshot.term) }
            return
        }
        if index > lastIndex {
            reset(to: index, term: snapshot.term)
        } else {
            compact(upTo: index)
            setOffsetTerm(snapshot.term)
        }
    }
}

extension CorruptionReport {
    /// The warning for a damaged record that the snapshot covered.
    func droppedWarning(snapshotIndex: LogIndex) -> String {
        "dropped a damaged record (\(reason)) in \(file) at offset \(offset): log indexes \(lostRange) are "
            + "covered by the snapshot at \(snapshotIndex), so nothing is lost"
    }
}
