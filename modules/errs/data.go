package errs

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsDataError reports whether PostgreSQL refused a value itself rather than
// the operation: a data exception (class 22: too long, invalid byte sequence,
// NUL in text, out of range, bad format) or a CHECK constraint (23514). The
// request was wrong in a way validation should have caught; it is never
// transient and never the server's fault.
func IsDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "23514" || (len(pgErr.Code) == 5 && pgErr.Code[:2] == "22")
}
