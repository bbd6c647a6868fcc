package move

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestChangeLogRebuildsChecksum: a baseline taken while a transaction is in
// flight, plus the change log since its snapshot, equals a full checksum
// taken afterwards, for inserts, updates and deletes of columns hashed by
// type (jsonb, enum, arrays, tsvector, timestamptz) and with a generated
// column, both as the source logs (ordinary sessions) and as the target does
// (the apply worker's session_replication_role = replica). A change the log
// missed is caught.
func TestChangeLogRebuildsChecksum(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, tenancytest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA infra; CREATE SCHEMA s;
		CREATE TYPE s.mood AS ENUM ('ok', 'bad');
		CREATE TABLE s.docs (id int PRIMARY KEY, v tsvector, m s.mood, tags text[], at timestamptz[], j jsonb,
			g int GENERATED ALWAYS AS (id * 2) STORED);
		CREATE TABLE s.other (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
		INSERT INTO s.docs VALUES (1, to_tsvector('english', 'quiet tenants'), 'ok', '{a,b}', '{2026-01-01 10:00+02}', '{"k":1}'),
			(2, NULL, NULL, NULL, NULL, NULL);
		INSERT INTO s.other (note) SELECT 'n' || i FROM generate_series(1, 10) i`); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name   string
		source bool
		mode   string // session_replication_role of the writers
		id     int    // of the row inserted in flight
	}{{"source", true, "origin", 3}, {"target", false, "replica", 4}} {
		t.Run(side.name, func(t *testing.T) {
			e := &moveEnv{
				m:      &Move{ID: map[bool]int64{true: 1, false: 2}[side.source], TenantID: uuid.New()},
				t:      &tenancy.Tenant{Schema: "s"},
				tables: []string{"docs", "other"},
				src:    pool, tgt: pool,
				opts: Options{Log: slog.New(slog.DiscardHandler)},
			}
			if err := new(Mover).installChangeLog(ctx, e, pool, side.source); err != nil {
				t.Fatal(err)
			}
			write := func(tx pgx.Tx, q string) {
				t.Helper()
				if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = `+side.mode); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			// In flight while the baseline is taken, committed after it.
			inflight, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = inflight.Rollback(ctx) }() // a failure must not leave the pool unclosable
			write(inflight, `INSERT INTO s.docs (id, v, j) VALUES (`+strconv.Itoa(side.id)+`, to_tsvector('simple', 'in flight'), '[1]')`)
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			base, err := takeBaseline(ctx, e, conn.Conn())
			conn.Release()
			if err != nil {
				t.Fatal(err)
			}
			if err := inflight.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// Pruning what the baseline counts keeps what it does not.
			if err := pruneChangeLog(ctx, pool, e.m, base); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`UPDATE s.docs SET m = 'bad', tags = '{c}', at = '{2026-02-01 00:00Z}' WHERE id = 1`,
				`DELETE FROM s.docs WHERE id = ` + strconv.Itoa(side.id-1),
				`INSERT INTO s.other (note) VALUES ('after')`,
				`UPDATE s.other SET note = note || '!' WHERE id <= 3`,
				`DELETE FROM s.other WHERE id = 10`,
			} {
				if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { write(tx, q); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			// A rolled-back change leaves no trace.
			rolledBack, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = rolledBack.Rollback(ctx) }()
			write(rolledBack, `DELETE FROM s.other`)
			if err := rolledBack.Rollback(ctx); err != nil {
				t.Fatal(err)
			}

			compare := func() bool {
				t.Helper()
				changes, err := changesSince(ctx, pool, e.m, base.snapshot)
				if err != nil {
					t.Fatal(err)
				}
				conn, err := pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Release()
				now, err := takeBaseline(ctx, e, conn.Conn())
				if err != nil {
					t.Fatal(err)
				}
				rebuilt := base.current(changes)
				for _, tb := range e.tables {
					r := rebuilt[tb]
					if r.n != now.sums[tb].n || r.h.Cmp(&now.sums[tb].h) != 0 {
						t.Logf("%s: rebuilt %s, full checksum %s", tb, r, now.sums[tb])
						return false
					}
				}
				return true
			}
			if !compare() {
				t.Fatal("baseline plus change log differs from a full checksum")
			}
			// A change the log did not see (its trigger disabled) is a mismatch.
			if _, err := pool.Exec(ctx, `ALTER TABLE s.docs DISABLE TRIGGER `+e.m.name()+`;
				UPDATE s.docs SET j = '{"k":`+strconv.Itoa(side.id)+`}' WHERE id = 1;
				ALTER TABLE s.docs ENABLE ALWAYS TRIGGER `+e.m.name()); err != nil {
				t.Fatal(err)
			}
			if compare() {
				t.Fatal("a change the log missed went unnoticed")
			}
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return dropChangeLog(ctx, tx, e.m) }); err != nil {
				t.Fatal(err)
			}
			var left int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = $1) +
				(SELECT count(*) FROM pg_proc WHERE proname LIKE 'pdm\_%') + (SELECT count(*) FROM pg_class WHERE relname = $2)`,
				e.m.name(), e.m.changeLog()).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Fatalf("%d change log objects left after dropping it", left)
			}
		})
	}
}
