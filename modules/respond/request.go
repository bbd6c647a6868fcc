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

// Bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110) and the whitespace around the
// token does not matter, so every spelling resolves to the same credential.
func Bearer(r *http.Request) (string, bool) {
	f := strings.Fields(r.Header.Get("Authorization"))
	if len(f) != 2 || !strings.EqualFold(f[0], "Bearer") {
		return "", false
	}
	return f[1], true
}
