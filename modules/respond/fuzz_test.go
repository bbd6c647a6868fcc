package respond_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
)

// FuzzDecode: whatever the body, Decode answers a 400 or 413, or fills the
// target with strings PostgreSQL can store (UTF-8, no NUL); it never panics.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"title":"a","tags":["x"],"inner":{"name":"n"},"labels":{"k":"v"},"any":[1,{"a":null}]}`,
		`{"title":"a\u0000"}`, "{\"title\":\"\xff\"}", `{"title":"a","title":"b"}`, `{"Title":"a"}`,
		`{"ſtatus":"x"}`, "{\"\u212Aey\":1}", `{"any":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
		`{"id":"%00"}`, `{"id":"7d444840-9dc0-11d1-b245-5ffdce74fad2"}`, `[]`, `null`, `"x"`, `{"labels":{"\u0000":""}}`,
		`{"title":"\ud800"}`, `{"Plain":1e400}`, `{"tags":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var v target
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		err := respond.Decode(httptest.NewRecorder(), r, 1<<12, &v)
		if err != nil {
			if !errors.Is(err, errs.ErrInvalidInput) && !errors.Is(err, errs.ErrTooLarge) {
				t.Fatalf("body %q: %v is neither 400 nor 413", body, err)
			}
			return
		}
		if s, ok := badString(reflect.ValueOf(v)); ok {
			t.Fatalf("body %q decoded to unstorable string %q", body, s)
		}
		// U+FFFD in the result that the body did not spell is a lone
		// surrogate escape encoding/json replaced instead of refusing.
		if s, ok := replacedString(reflect.ValueOf(v)); ok && !strings.ContainsRune(body, utf8.RuneError) &&
			!strings.Contains(strings.ToLower(body), `\ufffd`) {
			t.Fatalf("body %q decoded with a replacement character: %q", body, s)
		}
	})
}

// replacedString finds a string in v holding U+FFFD.
func replacedString(v reflect.Value) (string, bool) {
	found := ""
	walkStrings(v, func(s string) bool {
		if strings.ContainsRune(s, utf8.RuneError) {
			found = s
			return true
		}
		return false
	})
	return found, found != ""
}

// badString finds a string in v that is not UTF-8 or holds a NUL.
func badString(v reflect.Value) (string, bool) {
	found, ok := "", false
	walkStrings(v, func(s string) bool {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			found, ok = s, true
		}
		return ok
	})
	return found, ok
}

// walkStrings calls f on every string in v (map keys included) until f
// returns true, and reports whether it did.
func walkStrings(v reflect.Value, f func(string) bool) bool {
	switch v.Kind() {
	case reflect.String:
		return f(v.String())
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && walkStrings(v.Elem(), f)
	case reflect.Struct:
		for i := range v.NumField() {
			if walkStrings(v.Field(i), f) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if walkStrings(v.Index(i), f) {
				return true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if walkStrings(k, f) || walkStrings(v.MapIndex(k), f) {
				return true
			}
		}
	}
	return false
}
