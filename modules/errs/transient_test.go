package errs_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// closedPort is a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestTransientOnRealPostgresErrors classifies errors produced by a real
// PostgreSQL and a real pgx, not constructed ones.
func TestTransientOnRealPostgresErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)

	_, refused := pgx.Connect(ctx, "postgres://postgres@"+closedPort(t)+"/postgres?sslmode=disable&connect_timeout=5")

	// A backend terminated under a running query: what a restart does.
	victim, killer := connect(t, dsn), connect(t, dsn)
	pid := victim.PgConn().PID()
	var wg sync.WaitGroup
	var terminated error
	wg.Go(func() { _, terminated = victim.Exec(ctx, `SELECT pg_sleep(30)`) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		var killed bool
		if err := killer.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'`, pid).Scan(&killed); err == nil && killed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the victim's query never showed up in pg_stat_activity")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	_, afterTerminate := victim.Exec(ctx, `SELECT 1`)

	serialization := serializationFailure(t, dsn)

	db := connect(t, dsn)
	_, unique := db.Exec(ctx, `CREATE TEMP TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (1)`)
	_, syntax := db.Exec(ctx, `SELEC 1`)
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, deadlineErr := db.Exec(qctx, `SELECT pg_sleep(5)`)

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"backend terminated during a query (57P01)", terminated, true},
		{"query on the terminated connection", afterTerminate, true},
		{"serialization failure (40001)", serialization, true},
		{"query deadline on a dependency", deadlineErr, true},
		{"wrapped connection refused", fmt.Errorf("notify event: %w", refused), true},
		{"unique violation", unique, false},
		{"syntax error", syntax, false},
		{"validation error", errs.Errorf(errs.ErrInvalid, "title is required"), false},
		{"not found", errs.ErrNotFound, false},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error happened", c.name)
			continue
		}
		if got := errs.IsTransient(c.err); got != c.want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// serializationFailure makes two serializable transactions conflict.
func serializationFailure(t *testing.T, dsn string) error {
	t.Helper()
	ctx := context.Background()
	a, b := connect(t, dsn), connect(t, dsn)
	if _, err := a.Exec(ctx, `CREATE TABLE ser (k int PRIMARY KEY, v int); INSERT INTO ser VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable}
	ta, err := a.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ta.Rollback(ctx) }()
	tb, err := b.BeginTx(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tb.Rollback(ctx) }()
	// Write skew: each reads what the other writes.
	for _, step := range []struct {
		tx  pgx.Tx
		sql string
	}{
		{ta, `SELECT sum(v) FROM ser`}, {tb, `SELECT sum(v) FROM ser`},
		{ta, `UPDATE ser SET v = 1 WHERE k = 1`}, {tb, `UPDATE ser SET v = 1 WHERE k = 2`},
	} {
		if _, err := step.tx.Exec(ctx, step.sql); err != nil {
			return err
		}
	}
	if err := ta.Commit(ctx); err != nil {
		return err
	}
	err = tb.Commit(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("expected a serialization failure, got %v", err)
	}
	return err
}
