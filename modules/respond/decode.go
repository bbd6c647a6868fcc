package respond

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody is the default cap on JSON request bodies.
const MaxBody = 1 << 20

// Decode reads a JSON body into v: at most limit bytes (413 beyond), no
// unknown fields and exactly one value (400 otherwise), and a clear detail
// naming the offending field on a type mismatch.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			return Errorf(ErrInvalidInput, "body must hold a single JSON object")
		}
		return nil
	}
	var (
		tooLarge *http.MaxBytesError
		typeErr  *json.UnmarshalTypeError
		syntax   *json.SyntaxError
	)
	switch {
	case errors.As(err, &tooLarge):
		return Errorf(ErrTooLarge, "body exceeds %d bytes", limit)
	case errors.As(err, &typeErr):
		return Errorf(ErrInvalidInput, "field %q must be %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(ErrInvalidInput, "malformed JSON")
	case errors.Is(err, io.EOF):
		return Errorf(ErrInvalidInput, "body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return Errorf(ErrInvalidInput, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return Errorf(ErrInvalidInput, "invalid JSON body: %s", fmt.Sprint(err))
}
