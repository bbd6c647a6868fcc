package inbound

import (
	"strings"
	"unicode/utf8"
)

// cleanText makes a body safe to store and show: invalid UTF-8 becomes
// U+FFFD, CRLF and lone CR become LF, NUL and the other C0 controls except tab
// and newline are removed (PostgreSQL rejects NUL in text; the others only
// hide content). repaired reports whether invalid UTF-8 or NUL was found, so
// the caller can record a warning.
func cleanText(s string) (out string, repaired bool) {
	if textIsClean(s) {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			repaired = true
			b.WriteRune(utf8.RuneError)
		case r == '\r':
			if i+1 >= len(s) || s[i+1] != '\n' {
				b.WriteByte('\n')
			}
		case r == 0:
			repaired = true
		case r < 0x20 && r != '\t' && r != '\n', r == 0x7f:
			// dropped: control characters carry no text
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String(), repaired
}

// textIsClean is cleanText's fast path: most bodies need no change.
func textIsClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// cleanLine makes a header value safe: valid UTF-8, no control characters
// (folding whitespace, tabs and line breaks become one space), trimmed.
func cleanLine(s string) string {
	s, _ = cleanText(s)
	if strings.ContainsAny(s, "\t\n") {
		s = strings.Join(strings.Fields(s), " ")
	}
	return strings.TrimSpace(s)
}
