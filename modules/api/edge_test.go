package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/bus"
)

var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	"Referrer-Policy":         "same-origin",
}

// TestSecurityHeadersOnEveryResponse: API answers, problems of every kind
// and the operational endpoints all carry the browser security headers;
// HSTS only over TLS (directly, or from a trusted proxy).
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "headers")
	for _, c := range []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"GET", "/healthz", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/metrics", "", nil, 200},
		{"GET", "/nowhere", "", nil, 404},
		{"DELETE", "/healthz", "", nil, 405},
		{"GET", "/t/headers/api/v1/me", "", nil, 401},
		{"GET", "/t/headers/api/v1/me", owner, nil, 200},
		{"POST", "/t/headers/api/v1/tickets", owner, map[string]any{"title": "t", "body": "b"}, 201},
		{"POST", "/t/headers/api/v1/tickets", owner, `{"title":`, 400},
		{"GET", "/t/%FF/api/v1/me", owner, nil, 400},
	} {
		r := s.Call(t, c.method, c.path, c.token, c.body)
		if r.Status != c.status {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, r, c.status)
		}
		for h, want := range securityHeaders {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, h, got, want)
			}
		}
		if hsts := r.Header.Get("Strict-Transport-Security"); hsts != "" {
			t.Errorf("%s %s over plain HTTP sends HSTS %q", c.method, c.path, hsts)
		}
	}
	// A proxy's X-Forwarded-Proto is ignored unless trusted.
	if r := s.Call(t, "GET", "/healthz", "", nil, "X-Forwarded-Proto", "https"); r.Header.Get("Strict-Transport-Security") != "" {
		t.Error("untrusted X-Forwarded-Proto turned on HSTS")
	}
	trusting := apitest.New(t, func(c *api.Config) { c.TrustForwardedProto = true })
	if r := trusting.Call(t, "GET", "/healthz", "", nil, "X-Forwarded-Proto", "https"); !strings.HasPrefix(r.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("trusted X-Forwarded-Proto https: no HSTS in %v", r.Header)
	}
	// Directly over TLS.
	tlsSrv := httptest.NewTLSServer(s.App.Handler)
	defer tlsSrv.Close()
	res, err := tlsSrv.Client().Get(tlsSrv.URL + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.TLS == nil || !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("over TLS: %v", res.Header)
	}
}

// TestMetricsOnlyForLoopbackOrToken is issue 9.7: on the public listener
// /metrics answers a loopback peer that came through no proxy, or the
// bearer of the metrics token; anybody else gets 404. The dedicated
// listener's handler is not gated.
func TestMetricsOnlyForLoopbackOrToken(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.MetricsToken = "scrape-secret-1" })
	for _, c := range []struct {
		name    string
		headers []string
		status  int
	}{
		// With a token set, loopback is no exemption: a same-host proxy
		// that adds no header would make every client loopback.
		{"loopback without the token", nil, 404},
		{"loopback with the token", []string{"Authorization", "Bearer scrape-secret-1"}, 200},
		{"through a proxy with the token", []string{"X-Forwarded-For", "203.0.113.9", "Authorization", "Bearer scrape-secret-1"}, 200},
		{"through a proxy with a wrong token", []string{"X-Forwarded-For", "203.0.113.9", "Authorization", "Bearer scrape-secret-2"}, 404},
	} {
		r := s.Call(t, "GET", "/metrics", "", nil, c.headers...)
		if r.Status != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.Status, c.status)
		}
		if c.status == 404 && (!r.IsProblem(404) || strings.Contains(string(r.Body), "patchdesk_")) {
			t.Errorf("%s: refused with %s", c.name, r)
		}
	}
	// A peer that is not loopback (as a request from the internet reaches
	// the handler), with and without the token.
	remote := func(h http.Handler, auth string) int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = "198.51.100.7:40000"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := remote(s.App.Handler, ""); code != 404 {
		t.Errorf("remote peer without token: %d", code)
	}
	if code := remote(s.App.Handler, "Bearer scrape-secret-1"); code != 200 {
		t.Errorf("remote peer with token: %d", code)
	}
	if code := remote(s.App.OpsHandler, ""); code != 404 {
		t.Errorf("worker ops handler, remote peer: %d", code)
	}
	if code := remote(s.App.MetricsHandler, ""); code != 200 {
		t.Errorf("dedicated metrics listener handler: %d", code)
	}

	// Without a token (the one-command run and the API contract's smoke
	// test): a direct loopback peer reads it, anything that looks proxied
	// does not.
	open := apitest.New(t, nil)
	for _, c := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"loopback, direct", nil, 200},
		{"through a proxy (X-Forwarded-For)", []string{"X-Forwarded-For", "203.0.113.9"}, 404},
		{"through a proxy (Forwarded)", []string{"Forwarded", "for=203.0.113.9"}, 404},
		{"through a proxy (X-Real-Ip)", []string{"X-Real-Ip", "203.0.113.9"}, 404},
		{"through a proxy (Via)", []string{"Via", "1.1 edge"}, 404},
	} {
		if r := open.Call(t, "GET", "/metrics", "", nil, c.headers...); r.Status != c.status {
			t.Errorf("no token, %s: %d, want %d", c.name, r.Status, c.status)
		}
	}
	if code := remote(open.App.Handler, ""); code != 404 {
		t.Errorf("no token, remote peer: %d", code)
	}
}

// TestRandomMethodsAddNoSeriesOverHTTP is issue 9.7 end to end: 300 made-up
// methods against the real API add no series to /metrics.
func TestRandomMethodsAddNoSeriesOverHTTP(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	count := func() int {
		m := s.Call(t, "GET", "/metrics", "", nil)
		return strings.Count(string(m.Body), "patchdesk_http_request_duration_seconds_count{")
	}
	s.Call(t, "BREW", "/healthz", "", nil)
	s.Call(t, "GET", "/metrics", "", nil) // the scrape's own series, before counting
	before := count()
	for i := range 300 {
		s.Call(t, "M"+strings.Repeat("X", i%5)+string(rune('A'+i%26))+string(rune('A'+i/26)), "/healthz", "", nil)
	}
	if after := count(); after != before {
		t.Fatalf("series %d → %d after 300 random methods", before, after)
	}
	if m := s.Call(t, "GET", "/metrics", "", nil); !strings.Contains(string(m.Body), `method="other"`) {
		t.Fatal(`no method="other" series`)
	}
}

// TestEdgeRefusesBadInput is issue 9.5: bytes PostgreSQL cannot store in the
// tenant slug, query parameters, cursors and JSON bodies answer 400, values
// longer than their column 422, and none of them logs an ERROR.
func TestEdgeRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "edge")
	customer := s.AddMember(t, "edge", owner, "customer")
	base := "/t/edge/api/v1"
	for _, c := range []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"GET", "/t/%FF/api/v1/me", "", nil, 400},
		{"GET", "/t/%00/api/v1/me", "", nil, 400},
		{"GET", "/t/ed%00ge/api/v1/tickets", owner, nil, 400},
		{"GET", base + "/tickets?status=%FF", owner, nil, 400},
		{"GET", base + "/tickets?tag=%00", owner, nil, 400},
		{"GET", base + "/tickets?tag=%zz", owner, nil, 400},
		{"GET", base + "/search?q=%C0%AF", owner, nil, 400},
		{"GET", base + "/members?cursor=eyJlIjoiXHUwMDAwIn0", owner, nil, 400}, // {"e":"\u0000"}
		{"POST", base + "/tickets", owner, `{"title":"a\u0000b","body":"x"}`, 400},
		{"POST", base + "/tickets", owner, "{\"title\":\"\xff\",\"body\":\"x\"}", 400},
		{"POST", base + "/tickets", owner, `{"title":"a","title":"b","body":"x"}`, 400},
		{"POST", base + "/tickets", owner, `{"Title":"a","body":"x"}`, 400},
		{"POST", base + "/tickets", owner, map[string]any{"title": "t", "body": "x", "requester_email": strings.Repeat("a", 250) + "@edge.test"}, 422},
		{"POST", base + "/tickets", owner, map[string]any{"title": strings.Repeat("t", 201), "body": "x"}, 422},
		{"POST", base + "/tickets", owner, map[string]any{"title": "t", "body": strings.Repeat("b", 65_537)}, 422},
		{"POST", base + "/tickets", owner, map[string]any{"title": "t", "body": "x", "tags": []string{strings.Repeat("g", 41)}}, 422},
		{"POST", base + "/webhooks", owner, map[string]any{"url": "http://127.0.0.1/" + strings.Repeat("u", 2000), "events": []string{"*"}}, 422},
		// Customers open tickets at the default priority and without tags (staff only): 403.
		{"POST", base + "/tickets", customer.Token, map[string]any{"title": "t", "body": "x", "priority": "urgent"}, 403},
		{"POST", base + "/tickets", customer.Token, map[string]any{"title": "t", "body": "x", "tags": []string{"vip"}}, 403},
	} {
		r := s.Call(t, c.method, c.path, c.token, c.body)
		if !r.IsProblem(c.status) {
			t.Errorf("%s %.60s: %.200s, want %d", c.method, c.path, r, c.status)
		}
	}
	if r := s.Call(t, "POST", base+"/webhooks", owner, map[string]any{"url": "http://127.0.0.1/" + strings.Repeat("u", 1900), "events": []string{"*"}}); r.Status != 201 {
		t.Errorf("a 1,918-character url: %s", r)
	}
	if strings.Contains(s.Logs.String(), `"level":"ERROR"`) {
		t.Fatalf("bad input logged an ERROR:\n%s", s.Logs.String())
	}
}

// TestReadyzReportsEachDependency: /readyz names every check; a failing one
// (a broker nobody listens on) makes it 503 without its error text.
func TestReadyzReportsEachDependency(t *testing.T) {
	t.Parallel()
	ok := apitest.New(t, func(c *api.Config) {
		c.ReadyChecks = []api.ReadyCheck{{Name: "broker", Check: func(context.Context) error { return nil }}}
	})
	r := ok.Call(t, "GET", "/readyz", "", nil)
	if r.Status != 200 || r.JSON["status"] != "ready" || r.JSON["checks"].(map[string]any)["control_db"] != "ok" ||
		r.JSON["checks"].(map[string]any)["broker"] != "ok" {
		t.Fatalf("readyz: %s", r)
	}
	down := apitest.New(t, func(c *api.Config) {
		c.ReadyChecks = []api.ReadyCheck{{Name: "broker", Check: func(ctx context.Context) error { return bus.Ping(ctx, []string{"127.0.0.1:1"}) }}}
	})
	r = down.Call(t, "GET", "/readyz", "", nil)
	checks, _ := r.JSON["checks"].(map[string]any)
	if r.Status != 503 || r.JSON["status"] != "not ready" || checks["control_db"] != "ok" || checks["broker"] == "ok" ||
		strings.Contains(string(r.Body), "127.0.0.1") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz with the broker down: %s %v", r, r.Header)
	}
}
