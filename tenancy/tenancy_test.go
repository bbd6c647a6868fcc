package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	tenantmigrations "github.com/patchdesk/patchdesk/migrations/tenant"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/router"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// migrationsWith returns the real tenant migrations plus extra files.
func migrationsWith(t testing.TB, extra map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(tenantmigrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(tenantmigrations.FS, path)
		m[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}

func provision(t *testing.T, reg *tenancy.Registry, slug string) *tenancy.Tenant {
	t.Helper()
	tn, err := reg.Provision(context.Background(), tenancy.ProvisionParams{Slug: slug, Name: slug})
	if err != nil {
		t.Fatalf("provision %s: %v", slug, err)
	}
	return tn
}

func TestScopedTransactionIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := tenancytest.New(t, nil)
	a, b := provision(t, reg, "alpha"), provision(t, reg, "bravo")

	for _, tn := range []*tenancy.Tenant{a, b} {
		err := reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO members (email, name, role) VALUES ('same@example.com', $1, 'owner')`, tn.Slug)
			return err
		})
		if err != nil {
			t.Fatalf("insert into %s: %v", tn.Slug, err)
		}
	}
	err := reg.Tx(ctx, a, func(ctx context.Context, tx tenancy.Tx) error {
		var name string
		if err := tx.QueryRow(ctx, `SELECT name FROM members`).Scan(&name); err != nil {
			return err
		}
		if name != "alpha" {
			t.Errorf("unqualified query in alpha's scope read %q", name)
		}
		var n int
		return tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.members`, b.Schema)).Scan(&n)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("reading bravo's schema from alpha's scope: want permission denied (42501), got %v", err)
	}
	// The role and search_path were transaction-local: the pooled connection is clean again.
	err = reg.Tx(ctx, b, func(ctx context.Context, tx tenancy.Tx) error {
		var role, path string
		if err := tx.QueryRow(ctx, `SELECT current_user, current_setting('search_path')`).Scan(&role, &path); err != nil {
			return err
		}
		if role != b.Role || path != `"`+b.Schema+`"` {
			t.Errorf("scope of bravo: role %q path %q", role, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestProvisionFailureLeavesNoHalfTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)
	broken := migrationsWith(t, map[string]string{
		"09999_broken.sql": "-- +goose Up\nCREATE TABLE widgets (id int);\nSELECT no_such_function();\n",
	})
	bad, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4, TenantMigrations: broken})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Provision(ctx, tenancy.ProvisionParams{Slug: "halfway", Name: "x"}); err == nil {
		t.Fatal("provisioning with a broken migration succeeded")
	}
	// Init failing after the migrations is undone too.
	_, err = bad.Provision(ctx, tenancy.ProvisionParams{Slug: "initfail", Name: "x",
		Init: func(context.Context, tenancy.Tx) error { return errors.New("boom") }})
	if err == nil {
		t.Fatal("provisioning with a failing Init succeeded")
	}

	good, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Resolve(ctx, "halfway"); !errors.Is(err, tenancy.ErrTenantNotFound) {
		t.Fatalf("half tenant is visible: %v", err)
	}
	var schemas, roles, rows int
	err = good.Tx(ctx, provision(t, good, "probe"), func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%'),
			(SELECT count(*) FROM pg_roles r JOIN pg_auth_members m ON m.roleid = r.oid WHERE r.rolname LIKE 'r\_%' AND m.member = (SELECT oid FROM pg_roles WHERE rolname = session_user)),
			0`).Scan(&schemas, &roles, &rows)
	})
	if err != nil {
		t.Fatal(err)
	}
	if schemas != 1 {
		t.Errorf("tenant schemas left: %d, want only the probe's", schemas)
	}
	list, err := good.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Slug != "probe" {
		t.Errorf("control rows after failed provisioning: %+v", list)
	}
	// The slug is free again: re-running succeeds.
	tn := provision(t, good, "halfway")
	if got, err := good.Resolve(ctx, "halfway"); err != nil || got.ID != tn.ID {
		t.Fatalf("re-provisioned tenant not served: %v", err)
	}
}

func TestDuplicateSlug(t *testing.T) {
	t.Parallel()
	reg := tenancytest.New(t, nil)
	provision(t, reg, "taken")
	_, err := reg.Provision(context.Background(), tenancy.ProvisionParams{Slug: "taken", Name: "again"})
	if !errors.Is(err, tenancy.ErrSlugTaken) {
		t.Fatalf("want ErrSlugTaken, got %v", err)
	}
}

func TestMigrateFleetWithOneBrokenTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)
	v1, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	const fleet = 200
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		tenants []*tenancy.Tenant
	)
	sem := make(chan struct{}, 4)
	for i := range fleet {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tn, err := v1.Provision(ctx, tenancy.ProvisionParams{Slug: fmt.Sprintf("fleet-%03d", i), Name: "x"})
			if err != nil {
				t.Errorf("provision: %v", err)
				return
			}
			mu.Lock()
			tenants = append(tenants, tn)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Version 2 adds a table; one tenant already has a conflicting one.
	v2fs := migrationsWith(t, map[string]string{"09000_widgets.sql": "-- +goose Up\nCREATE TABLE widgets (id int PRIMARY KEY);\n"})
	v2, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 8, TenantMigrations: v2fs})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	victim := tenants[17]
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE TABLE `+victim.Schema+`.widgets (conflict text)`); err != nil {
		t.Fatal(err)
	}

	results := map[string]tenancy.MigrateResult{}
	err = v2.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: 8}, func(r tenancy.MigrateResult) { results[r.Slug] = r })
	if err == nil {
		t.Fatal("fleet migration with a broken tenant reported success")
	}
	if len(results) != fleet {
		t.Fatalf("got %d results, want %d", len(results), fleet)
	}
	for slug, r := range results {
		if slug == victim.Slug {
			if r.OK() {
				t.Errorf("broken tenant %s reported ok", slug)
			}
			continue
		}
		if !r.OK() || r.To != 9000 {
			t.Errorf("%s: ok=%v to=%d err=%v", slug, r.OK(), r.To, r.Err)
		}
	}
	// A tenant behind the binary's migrations is not routed.
	if _, err := v2.Resolve(ctx, victim.Slug); err != nil {
		t.Fatal(err)
	}
	h := router.Middleware(v2, "", func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, tenancy.ErrTenantBehind) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if code := serveTenant(h, victim.Slug); code != http.StatusServiceUnavailable {
		t.Errorf("tenant behind on migrations answered %d, want 503", code)
	}

	// Fix the tenant and re-run: it resumes, and the others are a no-op.
	if _, err := admin.Exec(ctx, `DROP TABLE `+victim.Schema+`.widgets`); err != nil {
		t.Fatal(err)
	}
	clear(results)
	if err := v2.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: 8}, func(r tenancy.MigrateResult) { results[r.Slug] = r }); err != nil {
		t.Fatalf("re-run after the fix: %v", err)
	}
	if r := results[victim.Slug]; r.From != v1.LatestVersion() || r.To != 9000 {
		t.Errorf("victim after re-run: %+v", r)
	}
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM control.tenants WHERE schema_version = 9000`).Scan(&n); err != nil || n != fleet {
		t.Errorf("tenants at version 9000: %d (%v), want %d", n, err, fleet)
	}
	if code := serveTenant(h, victim.Slug); code != http.StatusOK {
		t.Errorf("migrated tenant answered %d, want 200", code)
	}
}

func serveTenant(h http.Handler, slug string) int {
	r := mux.NewRouter()
	r.PathPrefix("/t/{tenant}/").Handler(h)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/t/"+slug+"/x", nil))
	return rec.Code
}

func TestRouterStatuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := tenancytest.New(t, nil)
	tn := provision(t, reg, "routed")
	var seen *tenancy.Tenant
	h := router.Middleware(reg, "example.test", func(w http.ResponseWriter, r *http.Request, err error) {
		switch {
		case errors.Is(err, tenancy.ErrTenantNotFound):
			w.WriteHeader(http.StatusNotFound)
		case errors.Is(err, tenancy.ErrTenantSuspended):
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = tenancy.FromContext(r.Context()) }))

	if code := serveTenant(h, "routed"); code != http.StatusOK || seen == nil || seen.ID != tn.ID {
		t.Fatalf("active tenant: %d %+v", code, seen)
	}
	if code := serveTenant(h, "nobody"); code != http.StatusNotFound {
		t.Errorf("unknown tenant: %d", code)
	}
	// A tenant cached by id (as consumers look tenants up) is not served
	// under the path /t/id:<uuid>/ (issue 9.10).
	if _, err := reg.ByID(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	if code := serveTenant(h, "id:"+tn.ID.String()); code != http.StatusNotFound {
		t.Errorf("/t/id:<uuid>/ answered %d, want 404", code)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
	req.Host = "routed.example.test:8080"
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("host-routed tenant: %d", rec.Code)
	}
	// Suspension is seen at once, despite the cached placement.
	if _, err := reg.SetStatus(ctx, "routed", tenancy.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if code := serveTenant(h, "routed"); code != http.StatusForbidden {
		t.Errorf("suspended tenant: %d, want 403", code)
	}
	if _, err := reg.SetStatus(ctx, "routed", tenancy.StatusActive); err != nil {
		t.Fatal(err)
	}
	if code := serveTenant(h, "routed"); code != http.StatusOK {
		t.Errorf("resumed tenant: %d", code)
	}
}

func TestPlacementChangeReachesOtherProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := tenancytest.NewDatabase(t)
	one, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	two, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	provision(t, one, "shared-view")
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { two.Listen(ctx) })
	if got, err := two.Resolve(ctx, "shared-view"); err != nil || got.Status != tenancy.StatusActive {
		t.Fatalf("resolve: %v", err)
	}
	if _, err := one.SetStatus(ctx, "shared-view", tenancy.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := two.Resolve(ctx, "shared-view")
		if err == nil && got.Status == tenancy.StatusSuspended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second registry still serves a stale placement: %+v %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
