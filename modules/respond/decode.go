package respond

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/patchdesk/patchdesk/modules/errs"
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
			return errs.Errorf(errs.ErrInvalidInput, "body must hold a single JSON object")
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
		return errs.Errorf(errs.ErrTooLarge, "body exceeds %d bytes", limit)
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
