package respond

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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

// NewPage builds a page from up to limit+1 items (one more than the page
// holds, to learn whether another page follows); cursor encodes the position
// after the last item shown.
func NewPage[T any](items []T, limit int, cursor func(last T) any) Page[T] {
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

// Limit parses ?limit= (default 25, 1..100).
func Limit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, Errorf(ErrInvalidInput, "limit must be an integer from 1 to %d", MaxLimit)
	}
	return n, nil
}

// EncodeCursor turns a position into an opaque cursor.
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor; "" leaves v untouched.
func DecodeCursor(s string, v any) error {
	if s == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, v) != nil {
		return Errorf(ErrInvalidInput, "cursor is invalid")
	}
	return nil
}

// IfMatch parses an optional If-Match header holding an object version.
func IfMatch(r *http.Request) (*int, error) {
	s := strings.Trim(r.Header.Get("If-Match"), `" `)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return nil, Errorf(ErrInvalidInput, "If-Match must be an object version number")
	}
	return &v, nil
}
