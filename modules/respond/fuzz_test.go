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
	})
}

// badString finds a string in v that is not UTF-8 or holds a NUL.
func badString(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		return s, !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badString(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if s, bad := badString(v.Field(i)); bad {
				return s, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if s, bad := badString(v.Index(i)); bad {
				return s, true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if s, bad := badString(k); bad {
				return s, true
			}
			if s, bad := badString(v.MapIndex(k)); bad {
				return s, true
			}
		}
	}
	return "", false
}
