// Package tenancytest gives tests a Registry on a fresh PostgreSQL database of
// their own, dropped (with the tenant roles it created) when the test ends.
package tenancytest

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchdesk/patchdesk/tenancy"
)

// AdminURL is the maintenance database used to create and drop test databases.
func AdminURL() string {
	return cmp.Or(os.Getenv("PATCHDESK_TEST_DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// SecretKey is the key test registries encrypt dedicated databases' DSNs
// with (Config.SecretKey): fixed, so that every registry a test opens on a
// control database can read what another stored.
var SecretKey = []byte("patchdesk-test-key-32-bytes-long")

// Options tunes the registry a test gets.
type Options struct {
	TenantMigrations fs.FS
}

// NewDatabase creates an empty database for the test and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := "pdtest_" + strings.ToLower(rand.Text()[:16])
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("connect to admin database: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("parse admin url: %v", err)
	}
	u.Path = "/" + name
	t.Cleanup(func() { dropDatabase(t, name) })
	return u.String()
}

// New returns a Registry on a fresh database; the control schema is migrated.
func New(t testing.TB, opts *Options) *tenancy.Registry {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	dsn := NewDatabase(t)
	reg, err := tenancy.Open(context.Background(), tenancy.Config{
		DatabaseURL:      dsn,
		MaxConns:         6,
		TenantMigrations: opts.TenantMigrations,
		SecretKey:        SecretKey,
	})
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	t.Cleanup(reg.Close)
	return reg
}

// dropDatabase drops the test database and then the tenant roles that were
// created in it (roles are cluster-wide and would otherwise pile up).
func dropDatabase(t testing.TB, name string) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Errorf("connect to admin database: %v", err)
		return
	}
	defer admin.Close(ctx)
	roles := tenantRoles(ctx, t, name)
	dropReplication(ctx, t, admin, name)
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		t.Errorf("drop test database: %v", err)
		return
	}
	for _, role := range roles {
		_, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{role}.Sanitize())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "2BP01" {
			continue // the tenant also lives in another test database; its cleanup drops the role
		}
		if err != nil {
			t.Errorf("drop tenant role %s: %v", role, err)
		}
	}
}

// dropReplication removes what an unfinished tier move left: subscriptions
// in the database and replication slots of it, both of which block DROP DATABASE.
func dropReplication(ctx context.Context, t testing.TB, admin *pgx.Conn, dbName string) {
	u, _ := url.Parse(AdminURL())
	u.Path = "/" + dbName
	if conn, err := pgx.Connect(ctx, u.String()); err == nil {
		rows, err := conn.Query(ctx, `SELECT subname, oid FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if err == nil {
			type sub struct {
				name string
				oid  uint32
			}
			subs, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sub, error) {
				var s sub
				return s, r.Scan(&s.name, &s.oid)
			})
			for _, s := range subs {
				id := pgx.Identifier{s.name}.Sanitize()
				for _, q := range []string{`ALTER SUBSCRIPTION ` + id + ` DISABLE`, `ALTER SUBSCRIPTION ` + id + ` SET (slot_name = NONE)`} {
					if _, err := conn.Exec(ctx, q); err != nil {
						t.Logf("disable subscription %s: %v", s.name, err)
					}
				}
				// Table-copy slots would make DROP SUBSCRIPTION wait on them: end them first.
				syncSlots := fmt.Sprintf("pg_%d_sync_%%", s.oid)
				for range 20 {
					_, _ = admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name LIKE $1 AND active_pid IS NOT NULL`, syncSlots)
					_, _ = admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active`, syncSlots)
					var left int
					if admin.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, syncSlots).Scan(&left) == nil && left == 0 {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if _, err := conn.Exec(ctx, `SET statement_timeout = '30s'`); err == nil {
					if _, err := conn.Exec(ctx, `DROP SUBSCRIPTION `+id); err != nil {
						t.Logf("drop subscription %s: %v", s.name, err)
					}
				}
			}
		}
		conn.Close(ctx)
	}
	for range 50 { // a walsender may hold a slot for a moment after its subscription went
		_, _ = admin.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, dbName)
		_, err := admin.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, dbName)
		var left int
		if err == nil && admin.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, dbName).Scan(&left) == nil && left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tenantRoles(ctx context.Context, t testing.TB, dbName string) []string {
	u, _ := url.Parse(AdminURL())
	u.Path = "/" + dbName
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Errorf("connect to test database: %v", err)
		return nil
	}
	defer conn.Close(ctx)
	// Roles granted to us with the tenant prefix: also catches roles of
	// tenants whose control row is gone.
	rows, err := conn.Query(ctx, `SELECT DISTINCT nspacl_role FROM (
		SELECT (aclexplode(nspacl)).grantee::regrole::text AS nspacl_role FROM pg_namespace WHERE nspname LIKE 't\_%') s
		WHERE nspacl_role LIKE 'r\_%'`)
	if err != nil {
		t.Errorf("list tenant roles: %v", err)
		return nil
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("list tenant roles: %v", err)
	}
	return roles
}
