package move

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestChecksumCoversEveryColumnType: the freeze's checksum runs on tables
// whose columns have no hash function of their own (tsvector: the search
// documents), tells a changed value apart, and leaves generated columns out.
// Before, it failed with SQLSTATE 42883 on the first search document, so
// every move of a tenant with indexed tickets failed at its switch.
func TestChecksumCoversEveryColumnType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tenancytest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA s;
		CREATE TYPE s.mood AS ENUM ('ok', 'bad');
		CREATE TABLE s.docs (id int PRIMARY KEY, v tsvector, m s.mood, tags text[], j jsonb,
			g int GENERATED ALWAYS AS (id * 2) STORED);
		INSERT INTO s.docs VALUES (1, to_tsvector('english', 'quiet tenants index'), 'ok', '{a,b}', '{"k":1}')`); err != nil {
		t.Fatal(err)
	}
	sum := func() (n int64, h string) {
		t.Helper()
		cols, err := storedColumns(ctx, conn, "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(cols["docs"]) != 5 {
			t.Fatalf("columns %v: want the 5 stored ones", cols["docs"])
		}
		if err := conn.QueryRow(ctx, checksumSQL(pgx.Identifier{"s", "docs"}.Sanitize(), cols["docs"])).Scan(&n, &h); err != nil {
			t.Fatalf("checksum: %v", err)
		}
		return n, h
	}
	n, before := sum()
	if n != 1 {
		t.Fatalf("count %d", n)
	}
	if _, err := conn.Exec(ctx, `UPDATE s.docs SET v = to_tsvector('english', 'noisy tenants index')`); err != nil {
		t.Fatal(err)
	}
	if _, after := sum(); after == before {
		t.Fatal("a changed tsvector left the checksum unchanged")
	}
}
