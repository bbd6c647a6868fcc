// Package errs holds the domain errors every module returns: a handful of
// sentinels, each meaning one HTTP status, and Problem, an error carrying a
// detail that is safe to show a client. It has no HTTP dependency, so
// services use it and the HTTP layer (package respond) maps it.
package errs

import (
	"errors"
	"fmt"
)

// Sentinel errors; module errors wrap them and respond.Error maps them to a status.
var (
	ErrInvalidInput    = errors.New("malformed request")       // 400
	ErrUnauthenticated = errors.New("not authenticated")       // 401
	ErrForbidden       = errors.New("not allowed")             // 403
	ErrNotFound        = errors.New("not found")               // 404
	ErrMethod          = errors.New("method not allowed")      // 405
	ErrConflict        = errors.New("conflict")                // 409
	ErrTooLarge        = errors.New("request body too large")  // 413
	ErrInvalid         = errors.New("validation failed")       // 422
	ErrRateLimited     = errors.New("rate limited")            // 429
	ErrUnavailable     = errors.New("temporarily unavailable") // 503
)

// Problem is an error with a client-safe detail message and a sentinel kind.
type Problem struct {
	Kind   error
	Detail string
	// RetryAfter, in seconds, is sent as Retry-After for 429 and 503.
	RetryAfter int
}

func (p *Problem) Error() string { return fmt.Sprintf("%v: %s", p.Kind, p.Detail) }

// Unwrap lets errors.Is match the sentinel.
func (p *Problem) Unwrap() error { return p.Kind }

// FirstError returns the first non-nil error, so a chain of checks reports
// the first one that failed.
func FirstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Errorf builds a Problem of the given kind whose detail is shown to the client.
func Errorf(kind error, format string, args ...any) error {
	return &Problem{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
