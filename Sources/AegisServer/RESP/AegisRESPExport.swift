// The RESP value type and its codec live in AegisRESP, shared with AegisClient; the
// server's API (`RESPValue` replies, `RESPValueParser`) re-exports them.
@_exported public import AegisRESP
