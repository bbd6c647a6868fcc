package tenancy_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestFleetHealth: the control-plane health the doctor and the alerts read
// (control schema version, tenants behind the binary, unfinished moves and
// their time in a step, pool usage) follows what the control plane records,
// and a registry opened with NoMigrate leaves a schema behind as it is.
func TestFleetHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)

	// NoMigrate on a fresh database: nothing applied, and it says so.
	bare, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 2, NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bare.ControlVersion(ctx); err == nil {
		t.Error("ControlVersion on a database never migrated: want an error")
	}
	bare.Close()

	reg, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	have, want, err := reg.ControlVersion(ctx)
	if err != nil || have != want || want < 4 {
		t.Fatalf("control version %d of %d: %v", have, want, err)
	}
	a, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: "health-a", Name: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: "health-b", Name: "B"}); err != nil {
		t.Fatal(err)
	}
	health := reg.HealthCollector()
	behind := func() float64 {
		t.Helper()
		if n := testutil.CollectAndCount(health, "patchdesk_tenants_behind"); n != 1 {
			t.Fatalf("patchdesk_tenants_behind series: %d, want 1 (database main)", n)
		}
		return gauge(t, health, "patchdesk_tenants_behind", map[string]string{"database": "main"})
	}
	if list, err := reg.TenantsBehind(ctx); err != nil || len(list) != 0 || behind() != 0 {
		t.Fatalf("fresh fleet: behind %v %v", list, err)
	}

	admin := tenancytest.Connect(t, dsn)
	if _, err := admin.Exec(ctx, `UPDATE control.tenants SET schema_version = schema_version - 2 WHERE slug = 'health-a'`); err != nil {
		t.Fatal(err)
	}
	list, err := reg.TenantsBehind(ctx)
	if err != nil || len(list) != 1 || list[0].Slug != "health-a" || list[0].SchemaVersion != reg.LatestVersion()-2 {
		t.Fatalf("one tenant behind: %+v %v", list, err)
	}
	if got := behind(); got != 1 {
		t.Errorf("patchdesk_tenants_behind = %v, want 1", got)
	}

	if _, err := admin.Exec(ctx, `INSERT INTO control.tenant_moves (tenant_id, from_database, to_database, state, error, updated_at)
		VALUES ($1, 'main', 'main', 'synced', 'verify failed', now() - interval '20 minutes')`, a.ID); err != nil {
		t.Fatal(err)
	}
	moves, err := reg.UnfinishedMoves(ctx)
	if err != nil || len(moves) != 1 || moves[0].State != "synced" || moves[0].Slug != "health-a" ||
		moves[0].Error != "verify failed" || moves[0].InState < 19*time.Minute {
		t.Fatalf("unfinished moves: %+v %v", moves, err)
	}
	if got := gauge(t, health, "patchdesk_tenant_moves", map[string]string{"state": "synced", "failed": "true"}); got != 1 {
		t.Errorf("failed synced moves = %v, want 1", got)
	}
	if got := gauge(t, health, "patchdesk_tenant_moves", map[string]string{"state": "replicating", "failed": "false"}); got != 0 {
		t.Errorf("replicating moves = %v, want 0", got)
	}
	if got := gauge(t, health, "patchdesk_tenant_move_step_seconds", map[string]string{"state": "synced"}); got < 19*60 {
		t.Errorf("synced step seconds = %v, want ≥ 1140", got)
	}
	if n := testutil.CollectAndCount(health, "patchdesk_tenant_move_step_seconds"); n != len(tenancy.MoveStatesActive) {
		t.Errorf("move step series: %d, want one per active state (%d)", n, len(tenancy.MoveStatesActive))
	}

	// Pools: the control pool is always reported, with its size.
	if n := testutil.CollectAndCount(reg.PoolCollector(), "patchdesk_db_pool_max_connections"); n < 1 {
		t.Errorf("pool series: %d", n)
	}
}

// gauge is the value of the series of name with exactly these labels among
// what c collects (the test fails when there is no such series).
func gauge(t *testing.T, c prometheus.Collector, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
