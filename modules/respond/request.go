package respond

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
)

// Limit parses ?limit= (default 25, 1..100).
func Limit(r *http.Request) (int, error) {
	return page.ParseLimit(r.URL.Query().Get("limit"))
}

// IfMatch parses an optional If-Match header holding an object version.
func IfMatch(r *http.Request) (*int, error) {
	s := strings.Trim(r.Header.Get("If-Match"), `" `)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return nil, errs.Errorf(errs.ErrInvalidInput, "If-Match must be an object version number")
	}
	return &v, nil
}
