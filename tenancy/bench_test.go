package tenancy_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// BenchmarkProvision measures provisioning one tenant (schema, role,
// migrations, activation) and reports the p95 in milliseconds.
func BenchmarkProvision(b *testing.B) {
	reg := tenancytest.New(b, nil)
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		if _, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: fmt.Sprintf("bench-%06d", i), Name: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchmarkNoopMigrate1000 measures `migrate` over 1,000 up-to-date tenants.
func BenchmarkNoopMigrate1000(b *testing.B) {
	reg := tenancytest.New(b, nil)
	ctx := context.Background()
	const n = 1000
	start := time.Now()
	sem := make(chan struct{}, 4)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: fmt.Sprintf("noop-%06d", i), Name: "bench"})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("provisioned %d tenants in %s (4 in parallel)", n, time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		count := 0
		if err := reg.MigrateTenants(ctx, tenancy.MigrateOptions{Parallel: 4}, func(tenancy.MigrateResult) { count++ }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("migrated %d tenants, want %d", count, n)
		}
	}
}
