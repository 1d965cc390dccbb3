import AegisRaft
import AegisTestKit
import Testing

/// The history recorder and the JSON-lines format.
@Suite struct LinearizabilityHistoryTests {
    @Test func test_history_recordsInvocationsAndCompletions() {
        var history = History()
        let w = history.invokeWrite(client: 1, key: 7, value: 5)
        let r = history.invokeRead(client: 2, key: 7)
        let c = history.invokeCompareAndSet(client: 3, key: 7, expected: 5, new: 6, at: 100)
        let completedWrite = history.complete(w, status: .ok)
        let completedRead = history.complete(r, status: .ok, output: 5)
        let completedTwice = history.complete(r, status: .fail)
        let completedUnknown = history.complete(OperationID(9), status: .ok)
        #expect(completedWrite && completedRead)
        #expect(!completedTwice, "already completed")
        #expect(!completedUnknown, "unknown id")
        let ops = history.operations
        #expect(ops.map(\.id) == [w, r, c])
        #expect(ops.map(\.invokeTime) == [1, 2, 100])
        #expect(ops.map(\.completeTime) == [101, 102, nil])
        #expect(ops.map(\.status) == [.ok, .ok, .info])
        #expect(ops[1].output == 5)
        #expect(ops[2].expected == 5 && ops[2].value == 6)
        // The compare-and-set never completed: it may or may not have taken effect.
        #expect(LinearizabilityChecker.check(ops).isLinearizable)
        var withRead = history
        let late = withRead.invokeRead(client: 2, key: 7)
        withRead.complete(late, status: .ok, output: 6)
        #expect(LinearizabilityChecker.check(withRead.operations).isLinearizable)
        withRead.complete(withRead.invokeRead(client: 2, key: 7), status: .ok, output: 4)
        #expect(!LinearizabilityChecker.check(withRead.operations).isLinearizable)
    }

    @Test func test_jsonLines_encodesEachKindInItsShape() {
        let ops = [
            write(0, 5, 10, 20, key: 7, client: 1),
            read(1, nil, 12, 30, key: 7, client: 2),
            cas(2, 5, 6, swapped: false, 40, 50, key: 7, client: 3),
            cas(3, nil, 6, 41, nil, key: 7, client: 4, .info),
            read(4, 3, 42, 43, key: 7, client: 5, .fail),
        ]
        #expect(HistoryJSONLines.encode(ops) == """
            {"id":0,"client":1,"key":7,"kind":"write","value":5,"status":"ok","invoke":10,"complete":20}
            {"id":1,"client":2,"key":7,"kind":"read","output":null,"status":"ok","invoke":12,"complete":30}
            {"id":2,"client":3,"key":7,"kind":"cas","expected":5,"value":6,"swapped":false,"status":"ok","invoke":40,"complete":50}
            {"id":3,"client":4,"key":7,"kind":"cas","expected":null,"value":6,"status":"info","invoke":41,"complete":null}
            {"id":4,"client":5,"key":7,"kind":"read","status":"fail","invoke":42,"complete":43}

            """)
    }

    @Test func test_jsonLines_roundTripsGeneratedHistories() throws {
        let generator = LinearizableHistoryGenerator(clients: 3, keys: 3, operationsPerClient: 40,
                                                     infoPercent: 20, failPercent: 20)
        for seed in UInt64(1)...10 {
            var history = generator.generate(seed: seed)
            // Fields that do not apply to a kind or status are not written.
            for k in history.indices {
                if history[k].status != .ok || history[k].kind != .compareAndSet { history[k].swapped = true }
                if history[k].status != .ok && history[k].kind == .read { history[k].output = nil }
            }
            let decoded = try HistoryJSONLines.decode(HistoryJSONLines.encode(history))
            #expect(decoded == history, "seed \(seed)")
        }
    }

    @Test func test_jsonLines_acceptsSpacingUnknownFieldsAndBlankLines() throws {
        let text = """

              { "key" : 3 , "id":9, "client":18446744073709551615, "kind":"read", "output":4,
            """ + #" "note": "a \"quoted\" word", "latency": -1.5e3, "retry": true,"# + """
             "status":"ok","invoke":1,"complete":2 }\r

            """
        let ops = try HistoryJSONLines.decode(text)
        #expect(ops == [read(9, 4, 1, 2, key: 3, client: .max)])
    }

    @Test func test_jsonLines_splitsWindowsLineEndings() throws {
        let ops = [write(0, 1, 0, 1), read(1, 1, 2, 3)]
        let text = HistoryJSONLines.encode(ops).split(separator: "\n").joined(separator: "\r\n")
        #expect(try HistoryJSONLines.decode(text) == ops)
    }

    @Test func test_jsonLines_reportsTheBadLine() {
        let good = HistoryJSONLines.encode(write(0, 1, 0, 1))
        let cases: [(String, String)] = [
            (#"{"id":1,"client":1,"key":1,"kind":"read","status":"ok","invoke":1,"complete":2}"#,
             #"field "output" must be an unsigned integer or null"#),
            (#"{"id":1,"client":1,"key":1,"kind":"delete","status":"ok","invoke":1}"#,
             #"field "kind" must be "read", "write" or "cas""#),
            (#"{"id":1,"client":1,"key":1,"kind":"cas","expected":1,"value":2,"status":"ok","invoke":1}"#,
             #"field "swapped" must be true or false"#),
            (#"{"id":1,"client":-1,"key":1,"kind":"write","value":1,"status":"ok","invoke":1}"#,
             #"field "client" must be an unsigned integer"#),
            (#"{"id":1,"client":18446744073709551616,"key":1,"kind":"write","value":1,"status":"ok","invoke":1}"#,
             #"field "client" must be an unsigned integer"#),
            (#"{"id":1,"id":2}"#, #"duplicate field "id" at column 15"#),
            (#"{"id":[1]}"#, "unsupported value (only strings, numbers, booleans and null) at column 7"),
            (#"{"id":1"#, "expected '}' at column 8"),
            (#"{"id":1} x"#, "unexpected text after the object at column 10"),
        ]
        for (line, message) in cases {
            #expect(throws: HistoryDecodingError(line: 2, message: message)) {
                try HistoryJSONLines.decode(good + "\n" + line + "\n")
            }
        }
    }
}
