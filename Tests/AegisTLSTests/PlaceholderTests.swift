import AegisTLS
import Testing

@Suite struct AegisTLSModuleTests {
    @Test func test_module_links() {
        #expect(String(describing: AegisTLS.self) == "AegisTLS")
    }
}
