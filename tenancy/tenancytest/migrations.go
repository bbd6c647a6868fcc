package tenancytest

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	tenantmigrations "github.com/patchdesk/patchdesk/migrations/tenant"
	"github.com/patchdesk/patchdesk/tenancy"
)

// MigrationsBefore returns the tenant migrations numbered below version
// (e.g. "00007"), for tests that build a tenant as an older release left it
// and then check what a migration makes of its rows.
func MigrationsBefore(t testing.TB, version string) fs.FS {
	t.Helper()
	names, err := fs.Glob(tenantmigrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, name := range names {
		if name[:len(version)] < version {
			b, err := fs.ReadFile(tenantmigrations.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = &fstest.MapFile{Data: b}
		}
	}
	return out
}

// LegacyTenant provisions tenant "legacy" in a new database with the tenant
// migrations below version only, as an older release left it, and returns
// the database URL, the tenant and a superuser connection to write the rows
// the old schema allowed. Opening a registry on the URL afterwards applies
// the newer migrations.
func LegacyTenant(t testing.TB, version string) (string, *tenancy.Tenant, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := NewDatabase(t)
	old, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4, TenantMigrations: MigrationsBefore(t, version)})
	if err != nil {
		t.Fatal(err)
	}
	tn, err := old.Provision(ctx, tenancy.ProvisionParams{Slug: "legacy", Name: "Legacy"})
	old.Close()
	if err != nil {
		t.Fatal(err)
	}
	return dsn, tn, Connect(t, dsn)
}

// Connect opens a connection to dsn that closes when t ends, for tests that
// read or break what tenant roles cannot reach.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
