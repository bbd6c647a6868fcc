package address_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/address"
	"github.com/patchdesk/patchdesk/modules/errs"
)

func TestCanonical(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
		err            error
	}{
		{"plain", "sam@example.com", "sam@example.com", nil},
		{"ASCII case", "Sam.Smith@Example.COM", "sam.smith@example.com", nil},
		{"trimmed", " \t sam@example.com\r\n", "sam@example.com", nil},
		{"atext", "a!#$%&'*+/=?^_`{|}~-b@x-y.example", "a!#$%&'*+/=?^_`{|}~-b@x-y.example", nil},
		{"long s folds to s", "ſam@example.com", "sam@example.com", nil},
		{"Kelvin sign folds to k", "\u212Aate@example.com", "kate@example.com", nil},
		{"Kelvin sign in the domain", "kate@\u212Aelvin.example", "kate@kelvin.example", nil},
		{"fullwidth", "ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ", "sam@example.com", nil},
		{"ligature", "ﬀ@example.com", "ff@example.com", nil},
		{"no-break space trimmed after NFKC", "\u00a0sam@example.com", "sam@example.com", nil},
		{"punycode domain", "sam@xn--bcher-kva.example", "sam@xn--bcher-kva.example", nil},
		{"Cyrillic look-alike", "\u0455am@example.com", "", address.ErrNotASCII},
		{"dotless i", "\u0131van@example.com", "", address.ErrNotASCII},
		{"dotted capital I", "\u0130van@example.com", "", address.ErrNotASCII},
		{"Greek final sigma", "\u03c2@example.com", "", address.ErrNotASCII},
		{"accented", "josé@example.com", "", address.ErrNotASCII},
		{"combining accent", "jose\u0301@example.com", "", address.ErrNotASCII},
		{"internationalised domain", "sam@bücher.example", "", address.ErrNotASCII},
		{"line separator is not trimmed", "sam@example.com\u2028", "", address.ErrNotASCII},
		{"invalid UTF-8", "sam\xff@example.com", "", address.ErrNotASCII},
		{"NUL", "sam\x00@example.com", "", address.ErrSyntax},
		{"inner space", "sam smith@example.com", "", address.ErrSyntax},
		{"display name", "Sam <sam@example.com>", "", address.ErrSyntax},
		{"quoted local part", `"sam"@example.com`, "", address.ErrSyntax},
		{"two ats", "sam@x@example.com", "", address.ErrSyntax},
		{"no at", "example.com", "", address.ErrSyntax},
		{"empty local", "@example.com", "", address.ErrSyntax},
		{"empty domain", "sam@", "", address.ErrSyntax},
		{"leading dot", ".sam@example.com", "", address.ErrSyntax},
		{"double dot", "s..am@example.com", "", address.ErrSyntax},
		{"domain literal", "sam@[127.0.0.1]", "", address.ErrSyntax},
		{"domain hyphen edge", "sam@-example.com", "", address.ErrSyntax},
		{"domain underscore", "sam@ex_ample.com", "", address.ErrSyntax},
		{"empty label", "sam@example..com", "", address.ErrSyntax},
		{"label of 64", "sam@" + strings.Repeat("a", 64) + ".com", "", address.ErrSyntax},
		{"label of 63", "sam@" + strings.Repeat("a", 63) + ".com", "sam@" + strings.Repeat("a", 63) + ".com", nil},
		{"local part of 65", strings.Repeat("a", 65) + "@example.com", "", address.ErrTooLong},
		{"local part of 64", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com", nil},
		{"255 bytes", "a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 61), "", address.ErrTooLong},
		{"254 bytes", "a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 60),
			"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 60), nil},
		{"empty", "", "", address.ErrSyntax},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := address.Canonical(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestFieldNamesTheField(t *testing.T) {
	t.Parallel()
	_, err := address.Field("requester_email", strings.Repeat("a", 300)+"@example.com")
	var p *errs.Problem
	if !errors.Is(err, errs.ErrInvalid) || !errors.As(err, &p) || !strings.HasPrefix(p.Detail, "requester_email ") {
		t.Fatalf("Field: %v, want a 422 problem naming requester_email", err)
	}
	if got, err := address.Field("email", "A@B.example"); err != nil || got != "a@b.example" {
		t.Fatalf("Field on a good address: %q, %v", got, err)
	}
}

// FuzzCanonical checks the properties every stored address relies on: the
// result is idempotent, ASCII without upper case or spaces, within the
// length limits, and every input is either accepted or refused with one of
// the three documented reasons.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"sam@example.com", "ſam@example.com", "\u212Aate@Example.com", "ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ", " a@b ", "\u0455am@x", "a@[1.2.3.4]", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := address.Canonical(in)
		if err != nil {
			if got != "" || !(errors.Is(err, address.ErrNotASCII) || errors.Is(err, address.ErrSyntax) || errors.Is(err, address.ErrTooLong)) {
				t.Fatalf("Canonical(%q) = %q, %v", in, got, err)
			}
			return
		}
		if again, err := address.Canonical(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, got, again, err)
		}
		if len(got) > address.MaxLength || !utf8.ValidString(got) || strings.ToLower(got) != got || strings.ContainsAny(got, " \t\r\n") {
			t.Fatalf("Canonical(%q) = %q is not canonical", in, got)
		}
		for _, r := range got {
			if r < '!' || r > '~' {
				t.Fatalf("Canonical(%q) = %q holds %q", in, got, r)
			}
		}
	})
}
