package api_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// farDatabase starts a second PostgreSQL cluster for the test (initdb and
// pg_ctl on its own port, wal_level=logical, stopped when the test ends) and
// registers its database as a dedicated tier: nothing is shared with the
// cluster of the control database, neither roles nor sequences nor grants.
func farDatabase(t *testing.T, s *apitest.Server, id string) *tenancytest.Cluster {
	t.Helper()
	c := tenancytest.NewCluster(t, "wal_level=logical")
	if err := s.Reg.AddDatabase(context.Background(), id, tenancy.TierDedicated, c.URL()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMoveBetweenClusters moves a tenant from the shared database to a
// dedicated database on another PostgreSQL cluster and back, while it and
// another tenant keep writing: nothing lost, numbers gap-free, no write
// failed, and neither cluster keeps anything of the moves.
func TestMoveBetweenClusters(t *testing.T) {
	s := apitest.New(t, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	far := farDatabase(t, s, "dedicated-far")
	moveOutAndBack(t, s, "dedicated-far")
	for name, conn := range map[string]*pgx.Conn{"shared": s.Admin(t), "far": tenancytest.Connect(t, far.URL())} {
		assertNoMoveLeftovers(t, name, conn)
	}
}

// TestMoveCrashAtEachStepBetweenClusters fails every step of moves between
// two clusters once, then resumes or aborts them.
func TestMoveCrashAtEachStepBetweenClusters(t *testing.T) {
	s := apitest.New(t, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	far := farDatabase(t, s, "dedicated-far")
	crashAtEachStep(t, s, "dedicated-far")
	for name, conn := range map[string]*pgx.Conn{"shared": s.Admin(t), "far": tenancytest.Connect(t, far.URL())} {
		assertNoMoveLeftovers(t, name, conn)
	}
}

// assertNoMoveLeftovers fails when a database still holds a finished move's
// replication objects, change logs or markers.
func assertNoMoveLeftovers(t *testing.T, name string, conn *pgx.Conn) {
	t.Helper()
	var left []string
	for what, q := range map[string]string{
		"slot":         `SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database()`,
		"publication":  `SELECT pubname::text FROM pg_publication`,
		"subscription": `SELECT subname::text FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		"change log":   `SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'infra' AND c.relname LIKE 'pdm\_%'`,
		"log function": `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'infra' AND p.proname LIKE 'pdm\_%'`,
		"trigger":      `SELECT tgname::text FROM pg_trigger WHERE tgname LIKE 'pdm\_%'`,
		"marker": `SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = '` + tenancy.MoveMarkerTable + `' AND n.nspname NOT LIKE '%\_r%'`,
	} {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: list %s: %v", name, what, err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: list %s: %v", name, what, err)
		}
		for _, n := range names {
			left = append(left, what+" "+n)
		}
	}
	if len(left) > 0 {
		t.Fatalf("%s cluster keeps after the moves: %v", name, left)
	}
}
