package page_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
)

// cursor has the shapes services use: a string key (members by email), a
// time and an id.
type cursor struct {
	Email string    `json:"e"`
	At    time.Time `json:"u"`
	ID    uuid.UUID `json:"i"`
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	in := cursor{Email: "a@b.test", At: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.New()}
	var out cursor
	if err := page.DecodeCursor(page.EncodeCursor(in), &out); err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	untouched := cursor{Email: "keep"}
	if err := page.DecodeCursor("", &untouched); err != nil || untouched.Email != "keep" {
		t.Fatalf("empty cursor: %+v %v", untouched, err)
	}
}

// TestHostileCursors is issue 9.5: a cursor whose string holds a NUL or
// bytes that are not UTF-8 reached PostgreSQL and answered 500.
func TestHostileCursors(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	for _, c := range hostileCursors() {
		var v cursor
		if err := page.DecodeCursor(c, &v); !errors.Is(err, errs.ErrInvalidInput) {
			t.Errorf("cursor %q (%q): %v, want 400", c, must(base64.RawURLEncoding.DecodeString(c)), err)
		}
	}
	// encoding/json would have turned these into U+FFFD or a NUL silently.
	var v cursor
	if err := page.DecodeCursor(enc([]byte(`{"e":"a\u0000"}`)), &v); err == nil {
		t.Fatalf("NUL accepted: %q", v.Email)
	}
}

func hostileCursors() []string {
	enc := base64.RawURLEncoding.EncodeToString
	return []string{
		"%FF", "%00", "!!!", "====", strings.Repeat("A", 10_000),
		enc([]byte(`{"e":"\u0000"}`)),
		enc([]byte("{\"e\":\"\xff\"}")),
		enc([]byte(`{"u":"not a time"}`)),
		enc([]byte(`{"i":"not-a-uuid"}`)),
		enc([]byte(`[1,2]`)),
		enc([]byte(`{"e":`)),
		enc([]byte{0xff, 0xfe, 0x00}),
	}
}

func must[T any](v T, _ error) T { return v }

func TestParseLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{{"", 25, true}, {"1", 1, true}, {"100", 100, true}, {"0", 0, false}, {"101", 0, false}, {"-1", 0, false},
		{"1e2", 0, false}, {"99999999999999999999", 0, false}, {"%00", 0, false}, {" 5", 0, false}} {
		got, err := page.ParseLimit(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLimit(%q) = %d, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, errs.ErrInvalidInput) {
			t.Errorf("ParseLimit(%q): %v is not a 400", tc.in, err)
		}
	}
}

// FuzzCursor: no input makes DecodeCursor panic, accept a string the
// database could not hold, or fail with anything but a 400; what
// EncodeCursor makes always decodes back.
func FuzzCursor(f *testing.F) {
	for _, c := range hostileCursors() {
		f.Add(c)
	}
	f.Add(page.EncodeCursor(cursor{Email: "x@y.test", ID: uuid.New()}))
	f.Fuzz(func(t *testing.T, s string) {
		var v cursor
		err := page.DecodeCursor(s, &v)
		if err != nil {
			if !errors.Is(err, errs.ErrInvalidInput) {
				t.Fatalf("cursor %q: %v is not a 400", s, err)
			}
			return
		}
		if !utf8.ValidString(v.Email) || strings.ContainsRune(v.Email, 0) {
			t.Fatalf("cursor %q decoded to unstorable %q", s, v.Email)
		}
		var back cursor
		if again := page.EncodeCursor(v); len(again) <= page.MaxCursor && page.DecodeCursor(again, &back) != nil {
			t.Fatalf("re-encoded cursor of %+v refused", v)
		}
	})
}

// FuzzParseLimit: every answer is 1..100 or a 400.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"", "25", "0", "-1", "101", "%FF", "\x00", "1e3", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := page.ParseLimit(s)
		if err == nil && (n < 1 || n > page.MaxLimit) {
			t.Fatalf("ParseLimit(%q) = %d", s, n)
		}
		if err != nil && !errors.Is(err, errs.ErrInvalidInput) {
			t.Fatalf("ParseLimit(%q): %v", s, err)
		}
	})
}
