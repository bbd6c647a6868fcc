package respond

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// checkStrict walks a JSON document once before encoding/json decodes it
// into a value of type t, refusing what encoding/json would silently accept:
// bytes that are not UTF-8 (it substitutes U+FFFD), NUL characters in any
// string (PostgreSQL text cannot hold them), duplicate keys (the last one
// wins, so two layers could read different values), and field names that
// match a struct field only case-insensitively. Unknown fields of a struct
// are refused too (the decoder's DisallowUnknownFields would fold case).
func checkStrict(data []byte, t reflect.Type) error {
	if !utf8.Valid(data) || loneSurrogate(data) {
		return errs.Errorf(errs.ErrInvalidInput, "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec}
	if err := w.value(t, ""); err != nil && !errors.Is(err, errSyntax) {
		return err
	}
	return nil
}

// loneSurrogate reports a \u escape of a UTF-16 surrogate that is not part
// of a pair (encoding/json would turn it into U+FFFD): the raw bytes are
// valid UTF-8, but the text they stand for is not.
func loneSurrogate(data []byte) bool {
	inString := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(data):
			if data[i+1] != 'u' {
				i++ // a one-character escape, \" included
				continue
			}
			r, ok := hex4(data, i+2)
			switch {
			case !ok:
				return false // malformed: the decoder reports it
			case r >= 0xDC00 && r <= 0xDFFF:
				return true
			case r >= 0xD800 && r <= 0xDBFF:
				low, ok := hex4(data, i+8)
				if i+7 >= len(data) || data[i+6] != '\\' || data[i+7] != 'u' || !ok || low < 0xDC00 || low > 0xDFFF {
					return true
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return false
}

// hex4 reads four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// maxDepth bounds nesting: the walk recurses, and no request body of the
// API nests more than a few levels.
const maxDepth = 32

// walker holds the token stream of one document.
type walker struct {
	dec   *json.Decoder
	depth int
}

// errSyntax stops the walk on malformed JSON: the decoder that runs next
// reports it with its usual detail.
var errSyntax = errors.New("syntax")

// value consumes one JSON value; t is the Go type it will be decoded into
// (nil when unknown: any, json.RawMessage, custom unmarshalers, extra values).
func (w walker) value(t reflect.Type, path string) error {
	if w.depth++; w.depth > maxDepth {
		return errs.Errorf(errs.ErrInvalidInput, "JSON nests deeper than %d levels", maxDepth)
	}
	tok, err := w.dec.Token()
	if err != nil {
		return errSyntax
	}
	t = deref(t)
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return w.object(t, path)
		}
		if v == '[' {
			var elem reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				elem = t.Elem()
			}
			for i := 0; w.dec.More(); i++ {
				if err := w.value(elem, path+"[]"); err != nil {
					return err
				}
			}
			if _, err := w.dec.Token(); err != nil {
				return errSyntax
			}
			return nil
		}
		return errSyntax
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return errs.Errorf(errs.ErrInvalidInput, "field %q must not contain NUL characters", fieldName(path))
		}
	}
	return nil
}

// object consumes the members of an object whose '{' was read.
func (w walker) object(t reflect.Type, path string) error {
	fields := fieldsOf(t)
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return errSyntax
		}
		key, _ := tok.(string)
		name := joinPath(path, key)
		if strings.IndexByte(key, 0) >= 0 {
			return errs.Errorf(errs.ErrInvalidInput, "field names must not contain NUL characters")
		}
		if seen[key] {
			return errs.Errorf(errs.ErrInvalidInput, "field %q appears twice", name)
		}
		seen[key] = true
		var child reflect.Type
		switch {
		case fields != nil:
			f, ok := fields.exact[key]
			if !ok {
				// encoding/json would match case-insensitively (with Unicode
				// folds such as ſ → s): only exact names are accepted.
				if want, folds := fields.folded[strings.ToLower(key)]; folds {
					return errs.Errorf(errs.ErrInvalidInput, "unknown field %q (field names are case-sensitive: %q)", name, want)
				}
				return errs.Errorf(errs.ErrInvalidInput, "unknown field %q", name)
			}
			child = f
		case t != nil && t.Kind() == reflect.Map:
			child = t.Elem()
		}
		if err := w.value(child, name); err != nil {
			return err
		}
	}
	if _, err := w.dec.Token(); err != nil {
		return errSyntax
	}
	return nil
}

// structFields are the JSON names of a struct type's fields.
type structFields struct {
	exact  map[string]reflect.Type
	folded map[string]string // lower-case name → exact name
}

var fieldCache sync.Map // reflect.Type → *structFields

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// fieldsOf returns the JSON fields of t, or nil when t is not a plain struct
// (custom unmarshalers decide their own keys).
func fieldsOf(t reflect.Type) *structFields {
	if t == nil || t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(unmarshalerType) ||
		reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil
	}
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{exact: map[string]reflect.Type{}, folded: map[string]string{}}
	addFields(f, t)
	fieldCache.Store(t, f)
	return f
}

func addFields(f *structFields, t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" && deref(sf.Type).Kind() == reflect.Struct {
			addFields(f, deref(sf.Type)) // embedded struct: its fields are promoted
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f.exact[name] = sf.Type
		f.folded[strings.ToLower(name)] = name
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldName names a field for a detail message ("body" for the top level).
func fieldName(path string) string {
	if path == "" {
		return "body"
	}
	return path
}
