// AegisTestKit: see the module's documentation. (Placeholder removed when the module's first type lands.)
enum AegisTestKitPlaceholder {}
