package respond

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// MaxBody is the default cap on JSON request bodies.
const MaxBody = 1 << 20

// Decode reads a JSON body into v: at most limit bytes (413 beyond); valid
// UTF-8 without NUL characters, no unknown, duplicate or wrongly-cased field
// names, and exactly one value (400 otherwise); a clear detail naming the
// offending field on a type mismatch.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errs.Errorf(errs.ErrTooLarge, "body exceeds %d bytes", limit)
	case err != nil:
		// A client that stops sending mid-body; never an infrastructure failure.
		return errs.Errorf(errs.ErrInvalidInput, "request body could not be read")
	}
	return decodeBytes(data, v)
}

// decodeBytes is Decode of a body already read.
func decodeBytes(data []byte, v any) error {
	if err := checkStrict(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			return errs.Errorf(errs.ErrInvalidInput, "body must hold a single JSON object")
		}
		return nil
	}
	var (
		typeErr *json.UnmarshalTypeError
		syntax  *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		return errs.Errorf(errs.ErrInvalidInput, "field %q must be %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errs.Errorf(errs.ErrInvalidInput, "malformed JSON")
	case errors.Is(err, io.EOF):
		return errs.Errorf(errs.ErrInvalidInput, "body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return errs.Errorf(errs.ErrInvalidInput, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errs.Errorf(errs.ErrInvalidInput, "invalid JSON body: %s", fmt.Sprint(err))
}
