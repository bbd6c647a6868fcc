package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// opsServe is a running `patchdesk serve` with its embedded broker on a
// known address, for the operator commands' tests.
type opsServe struct {
	dsn, base, kafka, token string
}

// startOpsServe runs serve in this process until the test ends, with one
// tenant (slug) signed up.
func startOpsServe(t *testing.T, slug string) *opsServe {
	t.Helper()
	s := &opsServe{dsn: tenancytest.NewDatabase(t), kafka: freeAddr(t)}
	addr := freeAddr(t)
	s.base = "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "--database-url", s.dsn, "--addr", addr, "--metrics-addr", "off",
			"--kafka-addr", s.kafka, "--data-dir", t.TempDir(), "--webhook-allow-private", "--signups-per-minute", "100", "--log-format", "json"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitHTTP(t, s.base+"/readyz")
	s.token = post(t, s.base+"/api/v1/signup", "", map[string]string{
		"slug": slug, "name": slug, "admin_email": "o@" + slug + ".test", "admin_name": "O", "password": "long password 1",
	})["token"].(string)
	return s
}

// runDoctorJSON runs `patchdesk doctor --json` and decodes its report.
func runDoctorJSON(t *testing.T, args ...string) (doctorReport, error) {
	t.Helper()
	var out bytes.Buffer
	err := doctorTo(context.Background(), &out, append([]string{"--json"}, args...))
	var rep doctorReport
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("doctor --json printed %q: %v", out.String(), jerr)
	}
	return rep, err
}

// check returns the report's row whose name starts with prefix.
func (r doctorReport) check(prefix string) (doctorCheck, bool) {
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Check, prefix) {
			return c, true
		}
	}
	return doctorCheck{}, false
}

// TestDoctor runs doctor against a healthy deployment (two databases, each
// led by the relay of a running serve, a tenant, the embedded broker), then
// breaks it (a tenant behind the binary's migrations, a tier move stuck in
// a step, the broker unreachable) and expects each failure reported and a
// non-zero exit.
func TestDoctor(t *testing.T) {
	t.Parallel()
	// A second tenant database, reached by an env: reference as operators
	// register them; the variable name is unique to this test.
	second := tenancytest.NewDatabase(t)
	envName := "PATCHDESK_DOCTOR_TEST_" + rand.Text()[:8]
	if err := os.Setenv(envName, second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Unsetenv(envName) })
	s := startOpsServe(t, "doc")
	admin := tenancytest.Connect(t, s.dsn)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, `INSERT INTO control.databases (id, kind, dsn_ref) VALUES ('second', 'dedicated', $1)`, "env:"+envName); err != nil {
		t.Fatal(err)
	}
	healthy := []string{"--database-url", s.dsn, "--kafka-brokers", s.kafka}

	var rep doctorReport
	var err error
	apitest.Eventually(t, 60*time.Second, "a healthy report", func() bool {
		rep, err = runDoctorJSON(t, healthy...)
		if !rep.OK {
			t.Logf("not healthy yet: %+v", rep.Checks)
		}
		return err == nil && rep.OK
	})
	if err != nil || !rep.OK {
		t.Fatalf("healthy deployment: %v %+v", err, rep.Checks)
	}
	for _, name := range []string{"control schema", "tenants", "tenants behind", "relay/outbox main", "relay/outbox second",
		"dead deliveries", "tier moves", "broker", "topic patchdesk.ticket-events", "topic patchdesk.dead-letter",
		"lag patchdesk-notify", "lag patchdesk-search", "lag patchdesk-reports", "dead letters"} {
		if c, ok := rep.check(name); !ok || c.Status != checkOK {
			t.Errorf("healthy: check %q = %+v (present %v), want OK", name, c, ok)
		}
	}

	// Break it: a tenant behind, a move stuck for an hour in replicating.
	if _, err := admin.Exec(ctx, `UPDATE control.tenants SET schema_version = schema_version - 1 WHERE slug = 'doc'`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `INSERT INTO control.tenant_moves (tenant_id, from_database, to_database, state, created_at, updated_at)
		SELECT id, 'main', 'second', 'replicating', now() - interval '2 hours', now() - interval '1 hour' FROM control.tenants WHERE slug = 'doc'`); err != nil {
		t.Fatal(err)
	}
	rep, err = runDoctorJSON(t, healthy...)
	if !errors.Is(err, errNeedsHuman) || rep.OK {
		t.Fatalf("broken deployment: err %v, ok %v", err, rep.OK)
	}
	if c, _ := rep.check("tenants behind"); c.Status != checkFail || !strings.Contains(c.Detail, "doc (v") {
		t.Errorf("tenant behind not reported: %+v", c)
	}
	if c, _ := rep.check("tier move "); c.Status != checkFail || !strings.Contains(c.Detail, "stuck") || !strings.Contains(c.Detail, "replicating") {
		t.Errorf("stuck move not reported: %+v", c)
	}
	if c, _ := rep.check("broker"); c.Status != checkOK {
		t.Errorf("broker is up: %+v", c)
	}

	// Broker down: reported, and the broker checks are skipped, not passed.
	down := []string{"--database-url", s.dsn, "--kafka-brokers", freeAddr(t)}
	rep, err = runDoctorJSON(t, down...)
	if !errors.Is(err, errNeedsHuman) || rep.OK {
		t.Fatalf("broker down: err %v, ok %v", err, rep.OK)
	}
	if c, _ := rep.check("broker"); c.Status != checkFail {
		t.Errorf("broker down not reported: %+v", c)
	}
	for _, name := range []string{"topics", "consumer lag", "dead letters"} {
		if c, _ := rep.check(name); c.Status != checkSkip {
			t.Errorf("broker down: %s = %+v, want SKIP", name, c)
		}
	}

	// The table for humans names the failures and where to look.
	var out bytes.Buffer
	if err := doctorTo(ctx, &out, down); !errors.Is(err, errNeedsHuman) {
		t.Errorf("doctor exit: %v", err)
	}
	for _, want := range []string{"CHECK", "STATUS", "tenants behind", "FAIL", "docs/runbook.md"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
