import AegisCluster

/// A clock the test moves by hand. Tests drive it from one task only, hence
/// `@unchecked Sendable` without a lock.
final class ManualTime: @unchecked Sendable {
    private(set) var now = ClusterInstant.zero

    func advance(by duration: Duration) { now = now + duration }

    var clock: ClusterClock { ClusterClock { [self] in self.now } }
}
