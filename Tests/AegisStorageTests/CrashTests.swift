import Foundation
import Testing

/// The built `aegis-killtest`, next to the test bundle or under `.build/debug`.
private func crashTestExecutable() -> String? {
    var candidates: [String] = []
    if let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("aegis-killtest").path)
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/aegis-killtest").path)
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

@Test func test_crashTest_killedAppenderLosesNoAcknowledgedEntry() throws {
    guard let executable = crashTestExecutable() else {
        // Only when the executable was genuinely not built (e.g. `swift build --target`).
        Issue.record("aegis-killtest is not built; run `swift build --build-tests` first")
        return
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = ["--runs", "10", "--json", "--max-delay-ms", "150"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
    let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    #expect(process.terminationStatus == 0, "\(line)")
    #expect(json?["runs"] as? Int == 10)
    #expect(json?["lost_acked"] as? Int == 0)
    #expect(json?["corruptions_detected"] as? Int == 0)
    #expect((json?["acked_entries"] as? Int ?? 0) > 0)
}
