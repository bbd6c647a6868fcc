// Package page is the list envelope services return ({items, next_cursor})
// and its opaque cursors.
package page

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 25
	MaxLimit     = 100
)

// Page is the list envelope of the API: {items, next_cursor}.
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// New builds a page from up to limit+1 items (one more than the page
// holds, to learn whether another page follows); cursor encodes the position
// after the last item shown.
func New[T any](items []T, limit int, cursor func(last T) any) Page[T] {
	if items == nil {
		items = []T{}
	}
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	items = items[:limit]
	next := EncodeCursor(cursor(items[limit-1]))
	return Page[T]{Items: items, NextCursor: &next}
}

// ParseLimit parses a ?limit= value (default 25, 1..100).
func ParseLimit(s string) (int, error) {
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, errs.Errorf(errs.ErrInvalidInput, "limit must be an integer from 1 to %d", MaxLimit)
	}
	return n, nil
}

// EncodeCursor turns a position into an opaque cursor.
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// MaxCursor bounds a cursor's length: the ones EncodeCursor makes are a
// few dozen bytes.
const MaxCursor = 512

// DecodeCursor reads a cursor made by EncodeCursor; "" leaves v untouched.
// Anything else (too long, not base64, not JSON of v's shape, not UTF-8 or
// holding a NUL, which PostgreSQL cannot compare) is a 400.
func DecodeCursor(s string, v any) error {
	if s == "" {
		return nil
	}
	invalid := errs.Errorf(errs.ErrInvalidInput, "cursor is invalid")
	if len(s) > MaxCursor {
		return invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	// A NUL can only arrive escaped (a raw one is invalid JSON); cursors we
	// make never hold a backslash-u0000, so refusing the sequence refuses no
	// real cursor.
	if err != nil || !utf8.Valid(b) || bytes.Contains(b, []byte(`\u0000`)) || json.Unmarshal(b, v) != nil {
		return invalid
	}
	return nil
}
