// Package respond is PatchDesk's one way of writing HTTP answers: JSON,
// files, problem+json errors (with the status each error means, and 5xx
// logging through the request's logger), and strict request decoding.
package respond

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/obs"
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

// StatusClientClosed is the status logged (and, were anyone still listening,
// sent) when the client cancelled its request: nginx's 499.
const StatusClientClosed = obs.StatusClientClosed

// Error maps err to a problem+json response with the request's logger
// (obs.Logger). Errors that match no sentinel are, in order: the client
// having gone away (499, logged at INFO as "client closed request"), an
// unreachable or restarting database or other transient dependency failure
// (503 with Retry-After, logged at WARN), a value the database refused as
// malformed or out of range that validation missed (422, logged at WARN),
// and otherwise a bare 500 logged at ERROR. No SQL or internal detail
// reaches the client.
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
		body = unmapped(r, err)
	default:
		// Only the sentinel's own text: wrapped context may name internals.
		body.Detail = sentinel.Error()
	}
	if (body.Status == http.StatusServiceUnavailable || body.Status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(body.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// unmapped classifies an error that matches no sentinel and logs it.
func unmapped(r *http.Request, err error) problemBody {
	ctx := r.Context()
	log := obs.Logger(ctx)
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		log.InfoContext(ctx, "client closed request", "status", StatusClientClosed, "err", err)
		return problemBody{Type: "about:blank", Title: "Client Closed Request", Status: StatusClientClosed}
	case errs.IsTransient(err):
		log.WarnContext(ctx, "dependency unavailable", "err", err)
		return problemBody{Type: "about:blank", Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: "a dependency is temporarily unavailable; retry later"}
	case errs.IsDataError(err):
		log.WarnContext(ctx, "database refused a value that validation let through", "err", err)
		return problemBody{Type: "about:blank", Title: http.StatusText(http.StatusUnprocessableEntity),
			Status: http.StatusUnprocessableEntity, Detail: "a value is malformed, too long or out of range"}
	}
	log.ErrorContext(ctx, "request failed", "err", err)
	return problemBody{Type: "about:blank", Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError}
}
