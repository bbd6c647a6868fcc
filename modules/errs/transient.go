package errs

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// transientSQLStates are PostgreSQL error codes that mean "the database was
// not able to do it now" rather than "the request is wrong": connection
// exceptions (class 08), operator intervention such as a shutdown (57P01–57P05),
// insufficient resources (class 53), serialization failure and deadlock.
var transientSQLStates = map[string]bool{
	"40001": true, "40P01": true,
	"57P01": true, "57P02": true, "57P03": true, "57P04": true, "57P05": true,
}

// IsTransient reports whether err is an infrastructure failure that a retry
// may cure: an unreachable or restarting PostgreSQL, a broken connection, a
// dependency deadline, a serialization conflict, or an error explicitly
// marked with ErrUnavailable. A request that is wrong is never transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if code := SQLState(err); code != "" {
		return transientSQLStates[code] || SQLClass(code) == "08" || SQLClass(code) == "53"
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}
