/// How far a source holds its log compaction for a standby link: the one rule behind
/// `NodeConfiguration.compactionFloor` on a DR primary.
///
/// The source keeps the entries after the link's cursor (or after the snapshot being
/// shipped to re-seed it) while the link is live: it asked within
/// `StreamSettings.linkHoldMillis`. It never keeps more than
/// `StreamSettings.maxEntriesHeld` entries behind the commit index for it: a link
/// further behind finds its entries compacted (`410 Gone`) and is re-seeded from the
/// source's snapshot.
public enum StreamHold {
    /// The index the log must not be compacted past, or `nil` for no hold.
    ///
    /// - Parameters:
    ///   - held: the link's last cursor and when it asked (monotonic ns), if it ever did.
    ///   - commitIndex: the source's commit index.
    ///   - now: the monotonic clock now, in ns.
    public static func floor(held: (index: UInt64, at: UInt64)?, commitIndex: UInt64, settings: StreamSettings,
                             now: UInt64) -> UInt64? {
        guard let held else { return nil }
        let (window, overflow) = settings.linkHoldMillis.multipliedReportingOverflow(by: 1_000_000)
        if !overflow, now > held.at, now - held.at > window { return nil }
        let lowest = commitIndex > settings.maxEntriesHeld ? commitIndex - settings.maxEntriesHeld : 0
        return max(held.index, lowest)
    }
}
