/// Redis's glob matching (`stringmatchlen`): `*` any run of bytes, `?` one byte,
/// `[abc]`, `[a-z]` and `[^a]` one byte of (or not of) a set, `\x` the byte `x`.
/// Used for `SCAN … MATCH` and `KEYS` (applied by the state machine), ACL key
/// patterns and `CONFIG GET` patterns.
///
/// Linear in `pattern.count * text.count` at worst: every token but `*` matches
/// exactly one byte, so backtracking to the last `*` is enough.
public func globMatch(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
    var p = 0, t = 0
    var starPattern = -1, starText = 0
    while t < text.count {
        if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
            starPattern = p
            starText = t
            p += 1
            continue
        }
        if p < pattern.count, let (matches, next) = matchOne(pattern, p, text[t]), matches {
            p = next
            t += 1
            continue
        }
        guard starPattern >= 0 else { return false }
        // Let the last `*` take one more byte and retry after it.
        starText += 1
        t = starText
        p = starPattern + 1
    }
    while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
    return p == pattern.count
}

/// Whether the token at `pattern[p]` (not `*`) matches `byte`, and where the next
/// token starts; `nil` for a malformed token (never matches).
private func matchOne(_ pattern: [UInt8], _ p: Int, _ byte: UInt8) -> (Bool, Int)? {
    switch pattern[p] {
    case UInt8(ascii: "?"):
        return (true, p + 1)
    case UInt8(ascii: "\\") where p + 1 < pattern.count:
        return (pattern[p + 1] == byte, p + 2)
    case UInt8(ascii: "["):
        var i = p + 1
        let negate = i < pattern.count && pattern[i] == UInt8(ascii: "^")
        if negate { i += 1 }
        var found = false
        while i < pattern.count && pattern[i] != UInt8(ascii: "]") {
            if pattern[i] == UInt8(ascii: "\\"), i + 1 < pattern.count {
                if pattern[i + 1] == byte { found = true }
                i += 2
            } else if i + 2 < pattern.count, pattern[i + 1] == UInt8(ascii: "-"), pattern[i + 2] != UInt8(ascii: "]") {
                let low = min(pattern[i], pattern[i + 2]), high = max(pattern[i], pattern[i + 2])
                if byte >= low && byte <= high { found = true }
                i += 3
            } else {
                if pattern[i] == byte { found = true }
                i += 1
            }
        }
        guard i < pattern.count else { return nil }  // no closing bracket
        return (found != negate, i + 1)
    default:
        return (pattern[p] == byte, p + 1)
    }
}
