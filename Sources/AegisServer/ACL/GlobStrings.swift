import AegisKV

/// `globMatch` (AegisKV) on the UTF-8 bytes of two strings.
func globMatch(_ pattern: String, _ text: String) -> Bool {
    globMatch(Array(pattern.utf8), Array(text.utf8))
}
