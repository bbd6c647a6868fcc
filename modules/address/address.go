// Package address defines the one canonical form of an email address in
// PatchDesk. Every address is canonicalised once, where it enters (member
// creation, login, a ticket's requester, inbound mail, web forms), stored in
// that form, and afterwards compared byte for byte, in Go with == and in SQL
// with = — never with strings.EqualFold or lower(), whose Unicode rules
// differ (Go folds ſ to s and K to k; PostgreSQL's lower() does neither
// the same way), which once let one customer read another's tickets.
//
// The canonical form is: NFKC-normalised, ASCII whitespace trimmed, ASCII
// only, ASCII letters lowercased, and a plain addr-spec (dot-atom local part
// of at most 64 bytes, hostname domain, at most 254 bytes in all). NFKC turns
// compatibility look-alikes into what they stand for (fullwidth letters, the
// long s ſ, the Kelvin sign K, ligatures), so they are the same identity as
// their ASCII spelling; whatever is still not ASCII afterwards (Cyrillic or
// Greek look-alikes, accented letters, internationalised addresses) is
// refused: write an internationalised domain in its xn-- form. The tenant
// schema enforces the result with CHECK constraints (migration 00005), and
// the migration's SQL rewrite of existing rows computes the same function
// (normalize(…, NFKC), btrim, translate A–Z), which a test checks.
package address

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// Limits of an address, in bytes (RFC 5321; the canonical form is ASCII).
const (
	MaxLength      = 254
	MaxLocalLength = 64
	maxLabelLength = 63
)

// asciiSpace is what is trimmed: exactly the characters the migration's
// btrim removes, so Go and SQL agree on every input.
const asciiSpace = " \t\n\v\f\r"

// Reasons Canonical refuses an address; each is safe to show a client.
var (
	ErrNotASCII = errors.New("must be ASCII (write an internationalised domain in its xn-- form)")
	ErrTooLong  = errors.New("must be at most 254 characters, 64 before the @")
	ErrSyntax   = errors.New("is not a valid address of the form name@example.com")
)

// Canonical returns the canonical form of an email address, or one of
// ErrNotASCII, ErrTooLong and ErrSyntax. It is idempotent, and two inputs
// denote the same mailbox for PatchDesk exactly when their canonical forms
// are equal.
func Canonical(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", ErrNotASCII
	}
	s := strings.Trim(norm.NFKC.String(raw), asciiSpace)
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return "", ErrNotASCII
		}
	}
	s = lowerASCII(s)
	if len(s) > MaxLength {
		return "", ErrTooLong
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return "", ErrSyntax
	}
	if len(local) > MaxLocalLength {
		return "", ErrTooLong
	}
	if !dotAtom(local) || !hostname(domain) {
		return "", ErrSyntax
	}
	return s, nil
}

// Field canonicalises the address in a request field, answering 422 with the
// field named when it is refused.
func Field(field, raw string) (string, error) {
	s, err := Canonical(raw)
	if err != nil {
		return "", errs.Errorf(errs.ErrInvalid, "%s %v", field, err)
	}
	return s, nil
}

// lowerASCII lowercases A–Z only: no locale, no Unicode tables.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// atext are the characters of an RFC 5322 atom besides letters and digits.
const atext = "!#$%&'*+-/=?^_`{|}~"

// dotAtom reports whether s is an RFC 5322 dot-atom: atoms joined by single
// dots (no quoted strings, no comments).
func dotAtom(s string) bool {
	if s == "" {
		return false
	}
	for atom := range strings.SplitSeq(s, ".") {
		if atom == "" {
			return false
		}
		for i := range len(atom) {
			c := atom[i]
			if !isAlnum(c) && strings.IndexByte(atext, c) < 0 {
				return false
			}
		}
	}
	return true
}

// hostname reports whether s is a DNS hostname: labels of letters, digits and
// inner hyphens, 1–63 bytes each (no address literals).
func hostname(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > maxLabelLength || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z'
}
