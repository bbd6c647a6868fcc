package respond_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
)

// Inner is nested in target to check that the walk follows field types.
type Inner struct {
	Name string `json:"name"`
}

// Embedded's fields are promoted into target.
type Embedded struct {
	Extra string `json:"extra"`
}

type target struct {
	Embedded
	Title  string            `json:"title"`
	Tags   []string          `json:"tags"`
	Inner  *Inner            `json:"inner"`
	Labels map[string]string `json:"labels"`
	ID     *uuid.UUID        `json:"id"`
	Any    any               `json:"any"`
	Status string            `json:"status"`
	Key    string            `json:"key"`
	Hidden string            `json:"-"`
	Plain  int
}

func decode(t *testing.T, body string) (target, error) {
	t.Helper()
	var v target
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	err := respond.Decode(httptest.NewRecorder(), r, 1<<10, &v)
	return v, err
}

// TestDecodeStrict is issue 9.5 and 9.10: bodies encoding/json accepts
// silently (case-folded names, duplicate keys, invalid UTF-8 turned into
// U+FFFD, NUL characters PostgreSQL cannot store) are refused with 400.
func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		kind       error // nil: accepted
		detail     string
	}{
		{"valid", `{"title":"a","tags":["x"],"inner":{"name":"n"},"labels":{"k":"v"},"extra":"e","Plain":1,"id":"7d444840-9dc0-11d1-b245-5ffdce74fad2","any":{"a":[1,{"b":null}]}}`, nil, ""},
		{"unicode text", `{"title":"héllo \u00e9 😀"}`, nil, ""},
		{"duplicate key", `{"title":"a","title":"b"}`, errs.ErrInvalidInput, `"title" appears twice`},
		{"duplicate nested key", `{"inner":{"name":"a","name":"b"}}`, errs.ErrInvalidInput, `"inner.name" appears twice`},
		{"duplicate map key", `{"labels":{"k":"a","k":"b"}}`, errs.ErrInvalidInput, "appears twice"},
		{"duplicate key inside any", `{"any":{"x":1,"x":2}}`, errs.ErrInvalidInput, "appears twice"},
		{"case-folded name", `{"Title":"a"}`, errs.ErrInvalidInput, `case-sensitive: "title"`},
		{"upper-case name", `{"TITLE":"a"}`, errs.ErrInvalidInput, "case-sensitive"},
		// encoding/json with DisallowUnknownFields takes these as "status" and "key".
		{"unicode fold (long s)", `{"ſtatus":"x"}`, errs.ErrInvalidInput, `unknown field "ſtatus"`},
		{"kelvin sign fold", "{\"\u212Aey\":\"k\"}", errs.ErrInvalidInput, "unknown field"},
		{"nested case-folded", `{"inner":{"Name":"a"}}`, errs.ErrInvalidInput, "case-sensitive"},
		{"unknown field", `{"nope":1}`, errs.ErrInvalidInput, `unknown field "nope"`},
		{"json dash field", `{"Hidden":"x"}`, errs.ErrInvalidInput, "unknown field"},
		{"escaped NUL", `{"title":"a\u0000b"}`, errs.ErrInvalidInput, `"title" must not contain NUL`},
		{"NUL in array", `{"tags":["ok","\u0000"]}`, errs.ErrInvalidInput, "NUL"},
		{"NUL in map value", `{"labels":{"k":"\u0000"}}`, errs.ErrInvalidInput, "NUL"},
		{"NUL in key", `{"labels":{"\u0000":"v"}}`, errs.ErrInvalidInput, "NUL"},
		{"invalid UTF-8", "{\"title\":\"\xff\xfe\"}", errs.ErrInvalidInput, "UTF-8"},
		{"lone surrogate after escaped quote and backslash", `{"title":"\ud83d\ude00 \\ud800 \"\ud800"}`, errs.ErrInvalidInput, "UTF-8"},
		{"escaped surrogate pair", `{"title":"a\ud83d\ude00b \\ud800x"}`, nil, ""},
		{"lone high surrogate", `{"title":"a\ud800b"}`, errs.ErrInvalidInput, "UTF-8"},
		{"high surrogate at the end", `{"title":"a\uD800"}`, errs.ErrInvalidInput, "UTF-8"},
		{"lone low surrogate", `{"title":"\udc00"}`, errs.ErrInvalidInput, "UTF-8"},
		{"high then non-low", `{"title":"\ud800\u0041"}`, errs.ErrInvalidInput, "UTF-8"},
		{"surrogate in a key", `{"labels":{"\ud800":"v"}}`, errs.ErrInvalidInput, "UTF-8"},
		{"overlong UTF-8", "{\"title\":\"\xc0\xaf\"}", errs.ErrInvalidInput, "UTF-8"},
		{"raw NUL byte", "{\"title\":\"a\x00\"}", errs.ErrInvalidInput, ""},
		{"deep nesting", `{"any":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, errs.ErrInvalidInput, "nests deeper"},
		{"syntax", `{"title":`, errs.ErrInvalidInput, "malformed JSON"},
		{"two values", `{} {}`, errs.ErrInvalidInput, "single JSON object"},
		{"empty", ``, errs.ErrInvalidInput, "empty"},
		{"wrong type", `{"title":1}`, errs.ErrInvalidInput, `"title" must be string`},
		{"too large", `{"title":"` + strings.Repeat("a", 2000) + `"}`, errs.ErrTooLarge, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode(t, tc.body)
			switch {
			case tc.kind == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.kind == nil:
			case !errors.Is(err, tc.kind):
				t.Fatalf("got %v, want %v", err, tc.kind)
			case !strings.Contains(err.Error(), tc.detail):
				t.Fatalf("detail %q lacks %q", err, tc.detail)
			}
		})
	}
}

func TestDecodeKeepsValues(t *testing.T) {
	t.Parallel()
	v, err := decode(t, `{"title":"t","extra":"e","inner":{"name":"n"},"Plain":3}`)
	if err != nil {
		t.Fatal(err)
	}
	if v.Title != "t" || v.Extra != "e" || v.Inner == nil || v.Inner.Name != "n" || v.Plain != 3 {
		t.Fatalf("decoded %+v", v)
	}
}
