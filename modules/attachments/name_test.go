package attachments_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/attachments"
)

func TestCleanName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300) + ".pdf"
	cases := []struct {
		name, in, want string
	}{
		{"plain", "report.pdf", "report.pdf"},
		{"unix path", "../../etc/passwd", "passwd"},
		{"windows path", `C:\Users\me\shot.png`, "shot.png"},
		{"control characters", "a\x00b\x1fc\x7f.txt", "abc.txt"},
		{"bidi override", "invoice\u202Efdp.exe", "invoicefdp.exe"},
		{"zero width", "a\u200Bb.txt", "ab.txt"},
		{"leading dots", "...hidden", "hidden"},
		{"newlines become spaces", "two\nlines.txt", "two lines.txt"},
		{"invalid UTF-8", "bad\xff.txt", "bad.txt"},
		{"nothing left", "\u202E/..", "attachment"},
		{"empty", "", "attachment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := attachments.CleanName(c.in); got != c.want {
				t.Fatalf("CleanName(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
	t.Run("long names keep their extension", func(t *testing.T) {
		t.Parallel()
		got := attachments.CleanName(long)
		if utf8.RuneCountInString(got) != attachments.MaxName || !strings.HasSuffix(got, ".pdf") || !utf8.ValidString(got) {
			t.Fatalf("CleanName(long) = %d characters %q…", utf8.RuneCountInString(got), got[:20])
		}
	})
}
