package tenancytest

import (
	"io/fs"
	"testing"
	"testing/fstest"

	tenantmigrations "github.com/patchdesk/patchdesk/migrations/tenant"
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
