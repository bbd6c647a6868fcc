package tenancy_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// BenchmarkFleet provisions a fleet of tenants in one shared database
// (PATCHDESK_FLEET_TENANTS, default 1,000; the closing figures use 10,000)
// and reports: provisioning time (first 1,000 and all), a no-op migrate, one
// added migration applied to every schema, and the memory of a backend that
// has queried 1,000 of the schemas.
func BenchmarkFleet(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("PATCHDESK_FLEET_TENANTS"))
	n = cmp.Or(n, 1000)
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(b)
	reg, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 8, CacheSize: n + 10})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	for b.Loop() {
		lat := make([]time.Duration, n)
		start := time.Now()
		var first1000 time.Duration
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		var mu sync.Mutex
		done := 0
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t0 := time.Now()
				if _, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: fmt.Sprintf("fleet-%05d", i), Name: "x"}); err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(t0)
				mu.Lock()
				if done++; done == min(1000, n) {
					first1000 = time.Since(start)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		all := time.Since(start)
		slices.Sort(lat)
		b.Logf("provisioned %d tenants in %s (first 1,000 in %s; p50 %s, p95 %s each, 4 at a time)",
			n, all.Round(time.Millisecond), first1000.Round(time.Millisecond), lat[n/2].Round(time.Millisecond), lat[n*95/100].Round(time.Millisecond))

		t0 := time.Now()
		if err := reg.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: 4}, nil); err != nil {
			b.Fatal(err)
		}
		noop := time.Since(t0)
		b.Logf("no-op migrate of %d tenants: %s", n, noop.Round(time.Millisecond))

		next := migrationsWith(b, map[string]string{"09100_fleet.sql": "-- +goose Up\nALTER TABLE tickets ADD COLUMN fleet_note text;\n"})
		reg2, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 8, TenantMigrations: next})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := reg2.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: 4}, nil); err != nil {
			b.Fatal(err)
		}
		added := time.Since(t0)
		reg2.Close()
		b.Logf("one added migration applied to %d tenants: %s", n, added.Round(time.Millisecond))

		before, after := backendMemory(b, dsn, min(n, 1000))
		b.Logf("backend memory: %.1f MiB fresh, %.1f MiB after querying %d tenant schemas", before, after, min(n, 1000))
		b.ReportMetric(float64(first1000.Milliseconds()), "provision-1000-ms")
		b.ReportMetric(float64(noop.Milliseconds()), "noop-migrate-ms")
		b.ReportMetric(float64(added.Milliseconds()), "added-migration-ms")
		b.ReportMetric(after, "backend-MiB")
	}
}

// backendMemory returns a backend's memory (MiB) when fresh and after it has
// queried the tickets of k tenant schemas (catalog and plan caches grow with
// the relations a backend touches).
func backendMemory(b *testing.B, dsn string, k int) (float64, float64) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	mem := func() float64 {
		var bytes int64
		if err := conn.QueryRow(ctx, `SELECT sum(total_bytes) FROM pg_backend_memory_contexts`).Scan(&bytes); err != nil {
			b.Fatal(err)
		}
		return float64(bytes) / (1 << 20)
	}
	before := mem()
	rows, err := conn.Query(ctx, `SELECT schema_name FROM control.tenants ORDER BY slug LIMIT $1`, k)
	if err != nil {
		b.Fatal(err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range schemas {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+s+`.tickets WHERE status = 'open'`).Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
	return before, mem()
}
