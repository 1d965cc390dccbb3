import Foundation

/// Starts a one-node `aegis serve` cluster on loopback for the real-process example
/// tests: data in `work/<cluster>`, log in `work/<cluster>.log`, the admin token in
/// `work/token`, then `extra`.
func startOneNodeCluster(aegis: String, work: URL, cluster: String, resp: Int, admin: String, peer: Int,
                         extra: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: aegis)
    process.arguments = ["serve", "--id", "n1", "--data-dir", work.appendingPathComponent(cluster).path,
                         "--cluster-id", cluster, "--peer-listen", "127.0.0.1:\(peer)",
                         "--client-listen", "127.0.0.1:\(resp)", "--admin-listen", admin,
                         "--peers", "n1=127.0.0.1:\(peer)/127.0.0.1:\(resp)", "--election-ticks", "10",
                         "--admin-token-file", work.appendingPathComponent("token").path,
                         "--initial-cluster-state", "new"] + extra
    let logURL = work.appendingPathComponent("\(cluster).log")
    _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
    let log = try FileHandle(forWritingTo: logURL)
    process.standardOutput = log
    process.standardError = log
    try process.run()
    return process
}
