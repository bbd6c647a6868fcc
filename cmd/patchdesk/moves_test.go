package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestTenantMoveDryRunAndMovesList: `tenants move --dry-run` reports size,
// copy estimate and prerequisites and changes nothing (no database
// registered, no move recorded, nothing created in the target); an
// unreachable target fails it. `tenants moves` then lists a real move with
// its phase timings, as text and JSON.
func TestTenantMoveDryRunAndMovesList(t *testing.T) {
	// Not parallel: captureStdout swaps the process's stdout.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := base64.StdEncoding.EncodeToString(key)
	control, dedicated := tenancytest.NewDatabase(t), tenancytest.NewDatabase(t)
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		t.Helper()
		return captureStdout(t, func() error {
			return run(ctx, append(args, "--control-database-url", control, "--secret-key", secret))
		})
	}
	if out, err := cli("tenants", "create", "smallco", "--owner-email", "o@smallco.test", "--owner-password", "long password 1"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, err := cli("tenants", "move", "smallco", "--to-database-url", dedicated, "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{"dry run: move smallco from main", "initial copy about", "ok  source wal_level", "target subscription rights", "nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}
	conn := tenancytest.Connect(t, control)
	var databases, moves int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM control.databases), (SELECT count(*) FROM control.tenant_moves)`).
		Scan(&databases, &moves); err != nil {
		t.Fatal(err)
	}
	if databases != 1 || moves != 0 {
		t.Fatalf("the dry run changed the control plane: %d databases, %d moves", databases, moves)
	}
	var schemas int
	if err := tenancytest.Connect(t, dedicated).QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\_%'`).Scan(&schemas); err != nil {
		t.Fatal(err)
	}
	if schemas != 0 {
		t.Fatalf("the dry run created %d tenant schemas in the target", schemas)
	}
	if out, err := cli("tenants", "move", "smallco", "--to-database-url", "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2", "--dry-run"); err == nil ||
		!strings.Contains(out, "FAIL  target reachable") {
		t.Fatalf("dry run to an unreachable target: %v\n%s", err, out)
	}

	if out, err := cli("tenants", "move", "smallco", "--to-database-url", dedicated); err != nil || !strings.Contains(out, "state done") {
		t.Fatalf("move: %v\n%s", err, out)
	}
	out, err = cli("tenants", "moves")
	if err != nil {
		t.Fatalf("moves: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "smallco") || !strings.Contains(lines[1], "done") ||
		!strings.Contains(lines[1], "initial copy ") || !strings.Contains(lines[1], "freeze.verify ") {
		t.Fatalf("moves:\n%s", out)
	}
	out, err = cli("tenants", "moves", "--json")
	if err != nil {
		t.Fatalf("moves --json: %v\n%s", err, out)
	}
	var listed []struct {
		Slug   string           `json:"slug"`
		State  string           `json:"state"`
		Phases map[string]int64 `json:"phases_ms"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("moves --json: %v\n%s", err, out)
	}
	if len(listed) != 1 || listed[0].State != "done" {
		t.Fatalf("moves --json: %+v", listed)
	}
	for _, phase := range []string{"prepare target", "start replication", "initial copy", "verify baseline", "switch",
		"freeze.lock", "freeze.catch-up", "freeze.verify", "freeze.seal", "freeze.flip", "clean up"} {
		if _, ok := listed[0].Phases[phase]; !ok {
			t.Fatalf("moves --json: no timing for %q in %v", phase, listed[0].Phases)
		}
	}
}
