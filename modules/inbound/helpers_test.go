package inbound

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// readSample reads testdata/name.
func readSample(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// parseSample parses testdata/name and checks the output invariants.
func parseSample(t testing.TB, name string) *Message {
	t.Helper()
	m, err := Parse(readSample(t, name))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	if err := checkStrings(m); err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

// checkStrings walks every string reachable from v (struct fields, slices,
// maps, pointers; byte contents of attachments excluded) and reports the
// first that is not valid UTF-8 or holds a NUL.
func checkStrings(v any) error {
	return walkStrings(reflect.ValueOf(v), "")
}

func walkStrings(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if !utf8.ValidString(s) {
			return fmt.Errorf("%s is not valid UTF-8: %q", path, truncate(s, 80))
		}
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("%s holds a NUL: %q", path, truncate(s, 80))
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return walkStrings(v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := walkStrings(v.Field(i), path+"."+v.Type().Field(i).Name); err != nil {
					return err
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // attachment bytes are content, not text
		}
		for i := range v.Len() {
			if err := walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if err := walkStrings(iter.Key(), path+"{key}"); err != nil {
				return err
			}
			if err := walkStrings(iter.Value(), path+"["+iter.Key().String()+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

// warningKinds lists the kinds of m's warnings.
func warningKinds(m *Message) []string {
	var out []string
	for _, w := range m.Warnings {
		out = append(out, w.Kind)
	}
	return out
}

func attachmentNames(m *Message) []string {
	var out []string
	for _, a := range m.Attachments {
		out = append(out, a.FileName)
	}
	return out
}
