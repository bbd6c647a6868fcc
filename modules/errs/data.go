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
	code := SQLState(err)
	return code == "23514" || SQLClass(code) == "22"
}

// SQLState returns the PostgreSQL error code (SQLSTATE) in err's chain, or
// "" when PostgreSQL did not answer with an error.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ""
	}
	return pgErr.Code
}

// SQLClass is the class of a SQLSTATE: its first two characters.
func SQLClass(code string) string {
	if len(code) != 5 {
		return ""
	}
	return code[:2]
}
