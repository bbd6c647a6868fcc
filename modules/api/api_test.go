package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

func TestRequestLogsCarryRequestIDAndTenant(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "logged")
	r := s.Call(t, "GET", "/t/logged/api/v1/me", owner, nil, "X-Request-Id", "req-abc-123")
	if r.Status != 200 || r.Header.Get("X-Request-Id") != "req-abc-123" {
		t.Fatalf("me: %s (request id %q)", r, r.Header.Get("X-Request-Id"))
	}
	found := false
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["msg"] != "request" {
			continue
		}
		if l["request_id"] == "req-abc-123" {
			found = l["tenant"] == "logged" && l["route"] == "/t/{tenant}/api/v1/me" && l["status"] == float64(200)
		}
		if l["request_id"] == "" || l["request_id"] == nil {
			t.Errorf("request line without request id: %s", line)
		}
	}
	if !found {
		t.Fatalf("no request line with id, tenant, route and status in:\n%s", s.Logs.String())
	}
}

func TestMetricsAndProblems(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "metered")
	s.Call(t, "POST", "/t/metered/api/v1/tickets", owner, map[string]any{"title": "x", "body": "y"})
	if r := s.Call(t, "GET", "/nowhere", "", nil); !r.IsProblem(404) {
		t.Errorf("unknown route: %s", r)
	}
	if r := s.Call(t, "DELETE", "/healthz", "", nil); !r.IsProblem(405) {
		t.Errorf("wrong method: %s", r)
	}
	m := s.Call(t, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`patchdesk_http_request_duration_seconds_bucket{code="201",method="POST",route="/t/{tenant}/api/v1/tickets"`,
		`patchdesk_tenants{status="active",tier="shared"} 1`,
		`patchdesk_tickets_created_total{tier="shared"} 1`,
		`patchdesk_outbox_rows_written_total 1`,
	} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestSuspendedTenantIsForbiddenEverywhere(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "paused")
	if _, err := s.Reg.SetStatus(context.Background(), "paused", tenancy.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []struct{ method, path string }{
		{"POST", "/sessions"}, {"GET", "/me"}, {"GET", "/members"}, {"GET", "/tickets"}, {"POST", "/tickets"}, {"GET", "/nope"},
	} {
		r := s.Call(t, rt.method, "/t/paused/api/v1"+rt.path, owner, map[string]any{})
		if rt.path == "/nope" {
			continue // unknown routes are 404 before any tenant is resolved
		}
		if !r.IsProblem(403) {
			t.Errorf("%s %s on a suspended tenant: %s", rt.method, rt.path, r)
		}
	}
	if r := s.Call(t, "GET", "/t/nobody-here/api/v1/me", owner, nil); !r.IsProblem(404) {
		t.Errorf("unknown tenant: %s", r)
	}
}

func TestBaseDomainRouting(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.BaseDomain = "patchdesk.test" })
	owner := s.Signup(t, "acme")
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/me", nil)
	req.Host = "acme.patchdesk.test"
	req.Header.Set("Authorization", "Bearer "+owner)
	res, err := s.Client().Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("host-routed /me: %v %v", res, err)
	}
	res.Body.Close()
}
