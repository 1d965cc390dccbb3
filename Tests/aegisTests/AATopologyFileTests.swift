@testable import aegis
import AegisKV
import Testing

/// `aegis serve --aa-topology FILE` and `PUT /v1/aa/topology`: the YAML form.
@Suite struct AATopologyFileTests {
    @Test func test_aStarAndATreeParse() throws {
        let star = try AATopologyFile.parse("""
            kind: star
            hub: hub
            clusters:
              hub: [127.0.0.1:8301, 127.0.0.1:8302]
              east: ["127.0.0.1:8401"]
              west:
            """, cluster: "east")
        #expect(star.kind == .star && star.hub == "hub" && star.clusters["west"] == [] && star.neighbours(of: "east") == ["hub"])
        let tree = try AATopologyFile.parse("""
            {"kind": "tree", "clusters": {"r": [], "a": [], "b": []}, "links": [["r", "a"], ["a", "b"]]}
            """, cluster: "b")
        #expect(tree.neighbours(of: "a") == ["b", "r"])
    }

    @Test func test_badFilesAreRefusedWithTheRule() {
        let bad: [(String, String)] = [
            ("kind: ring\nclusters: {a: []}", "kind must be"),
            ("kind: mesh\nclusters: [a, b]", "clusters must map"),
            ("kind: mesh\nclusters: {a: [nohost]}", "not host:port"),
            ("kind: mesh\nclusters: {a: []}\nextra: 1", "unknown topology fields"),
            ("kind: tree\nclusters: {a: [], b: []}\nlinks: [[a, b], [b, a]]", "listed twice"),
            ("kind: tree\nclusters: {a: [], b: [], c: []}\nlinks: [[a, b]]", "not connected"),
            ("kind: star\nhub: z\nclusters: {a: [], b: []}", "hub"),
            ("kind: mesh\nclusters: {x: [], y: []}", "not in the topology"),
            ("kind: mesh\nclusters: {a: [\n", "not valid YAML"),
        ]
        for (text, why) in bad {
            do {
                _ = try AATopologyFile.parse(text, cluster: "a")
                Issue.record("accepted: \(text)")
            } catch {
                #expect("\(error)".contains(why), "\(text): \(error)")
            }
        }
    }
}
