import AegisOperations
import Foundation
import Testing

@Suite struct RunbookTests {
    static let failover = """
    name: east-to-west
    primary: [127.0.0.1:8711, 127.0.0.1:8712]
    standby: 127.0.0.1:8811,127.0.0.1:8812
    defaults:
      timeout: 20s
    steps:
      - step: check-lag
        max-entries: 1000
        max-seconds: 1.5
        timeout: 5s
      - step: fence-primary
        continue-on-failure: true
      - step: wait-for-drain
        timeout: 2m
      - step: promote
        force: true
      - step: redirect-clients
      - step: verify-writes
        key: probe
      - step: notify
        name: page the on-call
        command: echo "$AEGIS_RUNBOOK $AEGIS_RUNBOOK_OK"
        always: true
        timeout: 500ms
    """

    @Test func test_parse_readsEveryStepAndField() throws {
        let book = try Runbook.parse(yaml: Self.failover)
        #expect(book.name == "east-to-west")
        #expect(book.primary == ["127.0.0.1:8711", "127.0.0.1:8712"])
        #expect(book.standby == ["127.0.0.1:8811", "127.0.0.1:8812"])
        #expect(book.steps.map(\.action) == [
            .checkLag(maxEntries: 1000, maxSeconds: 1.5), .fencePrimary, .waitForDrain, .promote(force: true),
            .redirectClients, .verifyWrites(key: "probe"),
            .notify(command: "echo \"$AEGIS_RUNBOOK $AEGIS_RUNBOOK_OK\"", always: true),
        ])
        #expect(book.steps.map(\.timeout) == [.seconds(5), .seconds(20), .seconds(120), .seconds(20), .seconds(20),
                                              .seconds(20), .milliseconds(500)])
        #expect(book.steps.map(\.continueOnFailure) == [false, true, false, false, false, false, false])
        #expect(book.steps[6].name == "page the on-call")
        #expect(book.steps[0].name == "check-lag")
    }

    @Test func test_plan_oneLinePerStepWithTimeouts() throws {
        let plan = try Runbook.parse(yaml: Self.failover).plan
        #expect(plan.count == 7)
        #expect(plan[0] == "1. check-lag [check-lag, timeout 5s]: check that the standby (127.0.0.1:8811,127.0.0.1:8812) is at most 1000 entries and 1.5 s behind its primary")
        #expect(plan[1].contains("continues on failure"))
        #expect(plan[6] == "7. page the on-call [notify, timeout 500ms]: run `echo \"$AEGIS_RUNBOOK $AEGIS_RUNBOOK_OK\"` (also after a failure)")
    }

    /// Each bad file is refused with an error naming the step (or field) and why.
    @Test(arguments: [
        ("steps:\n  - step: promote\n", "the runbook has no name"),
        (RunbookTests.header + "  - step: promot\n", "step 1 (line 5): unknown step 'promot'"),
        (RunbookTests.header + "  - step: promote\n    forse: true\n", "step 1 (promote) (line 6): unknown field 'forse'"),
        (RunbookTests.header + "  - step: check-lag\n    max-entries: 5\n  - step: fence-primary\n    key: x\n", "step 2 (fence-primary) (line 8): unknown field 'key'"),
        (RunbookTests.header + "  - step: check-lag\n", "step 1 (check-lag) (line 5): give max-entries, max-seconds or both"),
        (RunbookTests.header + "  - step: check-lag\n    max-entries: -3\n", "max-entries must be a whole number"),
        (RunbookTests.header + "  - step: check-lag\n    max-seconds: nan\n", "max-seconds must be a number of seconds"),
        (RunbookTests.header + "  - step: promote\n    force: yes please\n", "force must be true or false"),
        (RunbookTests.header + "  - step: promote\n    timeout: 2h\n", "timeout must be a duration like 30s, 500ms or 2m, at most 1h"),
        (RunbookTests.header + "  - step: promote\n    timeout: 1e300s\n", "timeout must be a duration"),
        (RunbookTests.header + "  - step: wait-for-drain\n", "step 1 (wait-for-drain) needs a fence-primary step before it"),
        (RunbookTests.header + "  - step: notify\n", "step 1 (notify) (line 5): command is required"),
        (RunbookTests.header + "  - step: promote\n  - step: promote\n", "the name 'promote' is used twice"),
        (RunbookTests.header + "  - promote\n", "step 1 (line 5) must be a mapping"),
        (RunbookTests.header + "  - step: promote\n    name: [a, b]\n", "name must be a single value"),
        ("name: x\nprimary: nowhere\nstandby: 127.0.0.1:1\nsteps:\n  - step: promote\n", "'nowhere' is not host:port"),
        ("name: x\nprimary: 127.0.0.1:1\nstandby: 127.0.0.1:1\nsteps: []\n", "steps (line 4) is empty"),
        ("name: x\nprimary: 127.0.0.1:1\nstandby: 127.0.0.1:1\nsteps:\n  - step: promote\ncolour: red\n", "the runbook (line 6): unknown field 'colour'"),
        ("name: x\nname: y\n", "duplicated key"),
        ("- just\n- a list\n", "the runbook must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\n" + String(repeating: "#", count: 2000) + "\n", "line 2 is 2000 bytes long"),
    ])
    func test_parse_refusesBadFiles_namingTheStep(yaml: String, expected: String) {
        do {
            _ = try Runbook.parse(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func test_parse_refusesTooManySteps() {
        let steps = (0 ... Runbook.maxSteps).map { "  - step: notify\n    name: n\($0)\n    command: 'true'\n" }.joined()
        #expect(throws: RunbookError.self) { try Runbook.parse(yaml: Self.header + steps) }
    }

    static let header = "name: x\nprimary: 127.0.0.1:1\nstandby: 127.0.0.1:2\nsteps:\n"

    /// The shipped example parses (it is what the docs show).
    @Test func test_shippedExample_parses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/dr-failover.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let book = try Runbook.parse(yaml: text)
        #expect(book.steps.count >= 5)
    }
}
