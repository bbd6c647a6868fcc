package respond

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// JSON writes v as a JSON body with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// File writes a download: body with its content type and file name.
func File(w http.ResponseWriter, contentType, name string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// NoContent writes 204.
func NoContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

var statusOf = []struct {
	err    error
	status int
}{
	{errs.ErrInvalidInput, http.StatusBadRequest},
	{errs.ErrUnauthenticated, http.StatusUnauthorized},
	{errs.ErrForbidden, http.StatusForbidden},
	{tenancy.ErrTenantSuspended, http.StatusForbidden},
	{errs.ErrNotFound, http.StatusNotFound},
	{tenancy.ErrTenantNotFound, http.StatusNotFound},
	{errs.ErrMethod, http.StatusMethodNotAllowed},
	{errs.ErrConflict, http.StatusConflict},
	{tenancy.ErrSlugTaken, http.StatusConflict},
	{errs.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{errs.ErrInvalid, http.StatusUnprocessableEntity},
	{errs.ErrRateLimited, http.StatusTooManyRequests},
	{errs.ErrUnavailable, http.StatusServiceUnavailable},
	{tenancy.ErrTenantBehind, http.StatusServiceUnavailable},
	{tenancy.ErrTenantMoving, http.StatusServiceUnavailable},
}

// Error maps err to a problem+json response. Errors that match no sentinel
// are logged with the request's logger and answered with a bare 500, so no SQL
// or internal detail reaches the client.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	status, sentinel := http.StatusInternalServerError, error(nil)
	for _, s := range statusOf {
		if errors.Is(err, s.err) {
			status, sentinel = s.status, s.err
			break
		}
	}
	body := problemBody{Type: "about:blank", Title: http.StatusText(status), Status: status}
	var p *errs.Problem
	switch {
	case errors.As(err, &p):
		body.Detail = p.Detail
		if p.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
		}
	case status == http.StatusInternalServerError:
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		// Only the sentinel's own text: wrapped context may name internals.
		body.Detail = sentinel.Error()
	}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
