package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestTenantLifecycleCLI drives the operator commands: an enterprise tenant
// in its own database (DSN stored encrypted), moves both ways, export and
// import, suspend, delete, gc.
func TestTenantLifecycleCLI(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := base64.StdEncoding.EncodeToString(key)
	control, dedicated := tenancytest.NewDatabase(t), tenancytest.NewDatabase(t)
	ctx := context.Background()
	cli := func(args ...string) string {
		t.Helper()
		out, err := captureStdout(t, func() error {
			return run(ctx, append(args, "--control-database-url", control, "--secret-key", secret))
		})
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	cli("tenants", "create", "bigco", "--database-url", dedicated, "--owner-email", "o@bigco.test", "--owner-password", "long password 1")
	cli("tenants", "create", "smallco", "--owner-email", "o@smallco.test", "--owner-password", "long password 1")
	if out := cli("tenants", "list"); !strings.Contains(out, "dedicated-bigco") || !strings.Contains(out, "dedicated") {
		t.Fatalf("list: %s", out)
	}
	conn, err := pgx.Connect(ctx, control)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ref string
	if err := conn.QueryRow(ctx, `SELECT dsn_ref FROM control.databases WHERE id = 'dedicated-bigco'`).Scan(&ref); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, "enc:") || strings.Contains(ref, "postgres") {
		t.Fatalf("the DSN is stored in plain text: %q", ref)
	}
	if out := cli("tenants", "move", "bigco", "--to", "shared", "--retain", "0s"); !strings.Contains(out, "state done") {
		t.Fatalf("move to shared: %s", out)
	}
	if out := cli("tenants", "move", "smallco", "--to-database-url", dedicated); !strings.Contains(out, "state done") {
		t.Fatalf("move to dedicated: %s", out)
	}
	if out := cli("tenants", "gc"); !strings.Contains(out, "dropped 1 retired") {
		t.Fatalf("gc: %s", out)
	}
	archive := filepath.Join(t.TempDir(), "bigco.tar.gz")
	cli("tenants", "export", "bigco", "--out", archive)
	cli("tenants", "import", archive, "--slug", "bigco-copy")
	cli("tenants", "suspend", "bigco")
	if err := run(ctx, []string{"tenants", "delete", "bigco", "--confirm", "nope", "--control-database-url", control}); err == nil {
		t.Fatal("delete without the right confirmation succeeded")
	}
	cli("tenants", "delete", "bigco", "--confirm", "bigco")
	out := cli("tenants", "list")
	if strings.Contains(out, "bigco ") || !strings.Contains(out, "bigco-copy") || !strings.Contains(out, "smallco") {
		t.Fatalf("list after delete: %s", out)
	}
	if err := run(ctx, []string{"tenants", "move", "--abort", "999", "--control-database-url", control}); err == nil {
		t.Fatal("aborting an unknown move succeeded")
	}
}

// TestTenantsListWithUnreachableDatabase: a tenant whose database cannot be
// reached is still listed, its size shown as unknown rather than as 0
// (issue 10.6: the error was swallowed), and the failure is logged.
func TestTenantsListWithUnreachableDatabase(t *testing.T) {
	// Not parallel: captureStdout swaps the process's stdout.
	control := tenancytest.NewDatabase(t)
	ctx := context.Background()
	list := func(args ...string) string {
		t.Helper()
		out, err := captureStdout(t, func() error {
			return run(ctx, append([]string{"tenants", "list", "--control-database-url", control}, args...))
		})
		if err != nil {
			t.Fatalf("tenants list: %v\n%s", err, out)
		}
		return out
	}
	list() // creates the control schema
	conn, err := pgx.Connect(ctx, control)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO control.databases (id, kind, dsn_ref) VALUES ('gone', 'dedicated', 'env:PATCHDESK_TEST_NEVER_SET_7Q2')`,
		`INSERT INTO control.tenants (id, slug, name, tier, status, database_id, schema_name, role_name)
			VALUES (gen_random_uuid(), 'stranded', 'x', 'dedicated', 'active', 'gone', 't_x', 'r_x')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	out := list()
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "stranded ") {
			row = l
		}
	}
	if row == "" || !strings.Contains(row, " ? ") || strings.Contains(row, "KiB") {
		t.Fatalf("list with an unreachable database: %q in\n%s", row, out)
	}
	if out := list("--json"); !strings.Contains(out, `"size_bytes":null`) {
		t.Fatalf("JSON list: size of the stranded tenant is not null:\n%s", out)
	}
}

// TestTenantDeleteRemovesMailSpool (issue 9.8): `tenants delete` also
// deletes the tenant's mail spool (notify's .eml files, one directory per
// tenant), and only that tenant's.
func TestTenantDeleteRemovesMailSpool(t *testing.T) {
	control, dataDir := tenancytest.NewDatabase(t), t.TempDir()
	ctx := context.Background()
	cli := func(args ...string) string {
		t.Helper()
		out, err := captureStdout(t, func() error {
			return run(ctx, append(args, "--control-database-url", control, "--data-dir", dataDir))
		})
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	cli("tenants", "create", "gone", "--owner-email", "o@gone.test", "--owner-password", "long password 1")
	cli("tenants", "create", "kept", "--owner-email", "o@kept.test", "--owner-password", "long password 1")
	conn, err := pgx.Connect(ctx, control)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	spools := map[string]string{}
	for _, slug := range []string{"gone", "kept"} {
		var id string
		if err := conn.QueryRow(ctx, `SELECT id::text FROM control.tenants WHERE slug = $1`, slug).Scan(&id); err != nil {
			t.Fatal(err)
		}
		spools[slug] = filepath.Join(dataDir, "mail", id)
		if err := os.MkdirAll(spools[slug], 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(spools[slug], "x.eml"), []byte("Subject: x\r\n\r\nx\r\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	cli("tenants", "delete", "gone", "--confirm", "gone")
	if _, err := os.Stat(spools["gone"]); !os.IsNotExist(err) {
		t.Fatalf("the deleted tenant's mail spool remains: %v", err)
	}
	if _, err := os.Stat(filepath.Join(spools["kept"], "x.eml")); err != nil {
		t.Fatalf("another tenant's spool was touched: %v", err)
	}
}
