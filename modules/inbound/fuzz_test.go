package inbound

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// FuzzParse runs arbitrary bytes through everything the pipeline will call
// on an inbound message: Parse, Classify, the body cutters, the recipient
// router, the reply-address verifier and the subject reference. It must
// never panic; every string it returns must be valid UTF-8 without NUL; a
// failure must be ErrInvalid (a 422, not a 500). Seeds: testdata/*.eml.
//
//	go test -run XXX -fuzz FuzzParse -fuzztime 5m ./modules/inbound/
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed corpus: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("From: a@b.example\r\n\r\nx"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"))
	secret := []byte("fuzz secret")
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, errs.ErrInvalid) {
				t.Fatalf("Parse failed with %v, want ErrInvalid", err)
			}
			return
		}
		if err := checkStrings(m); err != nil {
			t.Fatal(err)
		}
		if len(m.Key) != 64 || m.KeyFromRaw != (m.MessageID == "") || m.Size != len(raw) {
			t.Fatalf("key %q fromRaw %v id %q size %d", m.Key, m.KeyFromRaw, m.MessageID, m.Size)
		}
		if m.Body.Text != "" && m.New.Text == "" {
			t.Fatalf("cutting emptied the text %q", m.Body.Text)
		}
		c := Classify(m, "fuzz-instance")
		if c.Kind == "" || checkStrings(c) != nil {
			t.Fatalf("Classify = %+v", c)
		}
		for _, r := range m.Recipients {
			slug, kind := RecipientRoute(r, "inbound.example")
			if !utf8.ValidString(slug) || kind == "" {
				t.Fatalf("RecipientRoute(%q) = %q, %q", r, slug, kind)
			}
			if _, _, ok := ParseReplyAddress(secret, r); ok {
				t.Fatalf("a fuzzed recipient %q verified as a reply address", r)
			}
		}
		_, _ = TicketRef(m.Subject)
		_ = m.ThreadIDs()

		fresh, quoted := SplitText(string(raw))
		freshHTML, quotedHTML := SplitHTML(string(raw))
		if err := checkStrings([]string{fresh, quoted, freshHTML, quotedHTML}); err != nil {
			t.Fatal(err)
		}
	})
}
