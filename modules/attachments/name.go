package attachments

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxName bounds a cleaned file name, in characters.
const MaxName = 255

// defaultName is what a file without a usable name is called.
const defaultName = "attachment"

// CleanName turns a client's file name into one safe to store and to send
// back in Content-Disposition: the last path element only (a name never
// picks a directory, on either separator), no control, format (bidi
// overrides such as U+202E, zero-width characters) or invalid UTF-8
// characters, no leading dots (hidden files) or surrounding spaces, at most
// MaxName characters with the extension kept. The name is metadata only:
// object keys never contain it.
func CleanName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			// Tabs and line breaks too: a name is one line.
			b.WriteByte(' ')
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			continue
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	name = strings.TrimSpace(name)
	if name == "" || name == "/" {
		return defaultName
	}
	if utf8.RuneCountInString(name) > MaxName {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 20 {
			ext = ""
		}
		runes := []rune(strings.TrimSuffix(name, ext))
		name = string(runes[:MaxName-utf8.RuneCountInString(ext)]) + ext
	}
	return name
}
