package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestIsDataErrorOnRealErrors checks the classifier on what PostgreSQL
// really answers: refused values are data errors, other failures are not.
func TestIsDataErrorOnRealErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tenancytest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tests := []struct {
		name string
		sql  string
		args []any
		data bool
	}{
		{"NUL in text", `SELECT $1::text`, []any{"a\x00"}, true},
		{"division by zero", `SELECT 1 / $1::int`, []any{0}, true},
		{"bad integer", `SELECT $1::text::int`, []any{"x"}, true},
		{"syntax error", `SELEC 1`, nil, false},
		{"undefined table", `SELECT * FROM no_such_table`, nil, false},
	}
	for _, tc := range tests {
		var out any
		err := conn.QueryRow(ctx, tc.sql, tc.args...).Scan(&out)
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		if got := errs.IsDataError(fmt.Errorf("wrapped: %w", err)); got != tc.data {
			t.Errorf("%s (%v): IsDataError = %v, want %v", tc.name, err, got, tc.data)
		}
	}
	if errs.IsDataError(errors.New("plain")) || errs.IsDataError(nil) {
		t.Error("non-PostgreSQL errors classified as data errors")
	}
}

// TestIsDataErrorCheckViolation uses a temporary table with the kind of
// CHECK constraint the tenant schema has (length(url) <= 2000).
func TestIsDataErrorCheckViolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tenancytest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE hooks (url text CHECK (length(url) <= 5), v varchar(3))`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql string
		arg string
	}{{`INSERT INTO hooks (url) VALUES ($1)`, "abcdef"}, {`INSERT INTO hooks (v) VALUES ($1)`, "abcd"}} {
		_, err := conn.Exec(ctx, q.sql, q.arg)
		if !errs.IsDataError(err) || errs.IsTransient(err) {
			t.Errorf("%s: %v classified data=%v transient=%v", q.sql, err, errs.IsDataError(err), errs.IsTransient(err))
		}
	}
}
