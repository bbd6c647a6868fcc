package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestDatabaseOutageAnswers503AndRecovers is issue 21.3: while PostgreSQL
// is down, requests answer 503 problem+json with Retry-After (not 500, and
// without the error's text), /readyz answers 503 naming the control
// database; once it is back both recover without a restart.
func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	t.Parallel()
	pg := tenancytest.NewCluster(t)
	s := apitest.NewOn(t, pg.URL(), nil)
	owner := s.Signup(t, "outage")
	if r := s.Call(t, "POST", "/t/outage/api/v1/tickets", owner, map[string]any{"title": "before", "body": "x"}); r.Status != 201 {
		t.Fatalf("create: %s", r)
	}
	if r := s.Call(t, "GET", "/readyz", "", nil); r.Status != 200 || r.JSON["status"] != "ready" {
		t.Fatalf("readyz before: %s", r)
	}

	if m := s.Call(t, "GET", "/metrics", "", nil); m.Status != 200 || !strings.Contains(string(m.Body), "patchdesk_tenants{") {
		t.Fatalf("metrics before: %d", m.Status)
	}

	pg.Ctl(t, "stop", "-m", "immediate")
	// Scrapes answer from the cache: the tenant gauges do not query the
	// (now unreachable) control database on each scrape.
	if m := s.Call(t, "GET", "/metrics", "", nil); m.Status != 200 || !strings.Contains(string(m.Body), `patchdesk_tenants{status="active",tier="shared"} 1`) {
		t.Errorf("metrics while the database is down: %d %.300s", m.Status, m.Body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/t/outage/api/v1/tickets"}, {"POST", "/t/outage/api/v1/tickets"}, {"GET", "/t/outage/api/v1/me"},
	} {
		r := s.Call(t, c.method, c.path, owner, map[string]any{"title": "during", "body": "x"})
		if !r.IsProblem(503) || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s while the database is down: %s (Retry-After %q)", c.method, c.path, r, r.Header.Get("Retry-After"))
		}
		if strings.Contains(string(r.Body), pg.Port) || strings.Contains(string(r.Body), "dial") {
			t.Errorf("error text leaked: %s", r.Body)
		}
	}
	r := s.Call(t, "GET", "/readyz", "", nil)
	checks, _ := r.JSON["checks"].(map[string]any)
	if r.Status != 503 || r.JSON["status"] != "not ready" || checks["control_db"] == "ok" || checks["control_db"] == nil {
		t.Fatalf("readyz while down: %s", r)
	}
	if strings.Contains(string(r.Body), pg.Port) {
		t.Fatalf("readyz leaks the address: %s", r.Body)
	}
	if h := s.Call(t, "GET", "/healthz", "", nil); h.Status != 200 {
		t.Fatalf("healthz while the database is down: %s", h)
	}

	pg.Ctl(t, "start")
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := s.Call(t, "GET", "/readyz", "", nil)
		list := s.Call(t, "GET", "/t/outage/api/v1/tickets", owner, nil)
		if ready.Status == 200 && list.Status == 200 && len(list.Items()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: readyz %s, list %s", ready, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("outage logged as a server error: %s", line)
		}
	}
}

// TestClientThatLeavesIsLoggedAs499 is issue 9.5: a client that gives up
// on a request blocked in the database (here behind a table lock) is
// logged as "client closed request" with 499, not as a 500 and an ERROR.
func TestClientThatLeavesIsLoggedAs499(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "leaver")
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, "leaver")
	if err != nil {
		t.Fatal(err)
	}
	admin := s.Admin(t)
	lock, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE `+pgx.Identifier{tn.Schema, "tickets"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(reqCtx, "GET", s.URL+"/t/leaver/api/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+owner)
	req.Header.Set("X-Request-Id", "leaving-1")
	done := make(chan error, 1)
	go func() {
		res, err := s.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	// Wait until the request is really blocked on the lock, then leave.
	waitFor(t, "the request to wait on the lock", func() bool {
		conn, err := pgx.Connect(ctx, s.DatabaseURL)
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var waiting int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass`,
			tn.Schema+".tickets").Scan(&waiting)
		return waiting > 0
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request completed")
	}
	waitFor(t, "the request line", func() bool { return strings.Contains(s.Logs.String(), `"status":499`) })
	var closed, request bool
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		if !strings.Contains(line, "leaving-1") {
			continue
		}
		closed = closed || (strings.Contains(line, `"msg":"client closed request"`) && strings.Contains(line, `"level":"INFO"`))
		request = request || (strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"status":499`))
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("a client leaving logged an ERROR: %s", line)
		}
	}
	if !closed || !request {
		t.Fatalf("no client-closed and 499 request lines for leaving-1:\n%s", s.Logs.String())
	}
}

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
