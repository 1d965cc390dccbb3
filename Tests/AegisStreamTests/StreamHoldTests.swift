import AegisStream
import Testing

/// How long and how far a DR primary holds its log compaction for a standby link.
@Suite struct StreamHoldTests {
    static let second: UInt64 = 1_000_000_000

    @Test func test_hold_keepsTheCursorWhileTheLinkIsLive() {
        var settings = StreamSettings()
        settings.linkHoldMillis = 10_000
        let held = (index: UInt64(500), at: 100 * Self.second)
        #expect(StreamHold.floor(held: nil, commitIndex: 900, settings: settings, now: 100 * Self.second) == nil)
        #expect(StreamHold.floor(held: held, commitIndex: 900, settings: settings, now: 105 * Self.second) == 500)
        #expect(StreamHold.floor(held: held, commitIndex: 900, settings: settings, now: 110 * Self.second) == 500)
    }

    @Test func test_hold_endsWhenTheLinkIsSilentForLinkHoldMillis() {
        var settings = StreamSettings()
        settings.linkHoldMillis = 10_000
        let held = (index: UInt64(500), at: 100 * Self.second)
        #expect(StreamHold.floor(held: held, commitIndex: 900, settings: settings, now: 111 * Self.second) == nil)
    }

    @Test func test_hold_neverKeepsMoreThanMaxEntriesHeld() {
        var settings = StreamSettings()
        settings.maxEntriesHeld = 1_000
        let held = (index: UInt64(10), at: 100 * Self.second)
        #expect(StreamHold.floor(held: held, commitIndex: 5_000, settings: settings, now: 100 * Self.second) == 4_000)
        #expect(StreamHold.floor(held: held, commitIndex: 900, settings: settings, now: 100 * Self.second) == 10)
    }
}
