import AegisOperations

// The library's admin API client under the name the tool's files use (it moved to
// AegisOperations with DrOrchestrator, so that an embedding program can use both).
typealias AdminHTTPClient = AegisOperations.AdminHTTPClient
