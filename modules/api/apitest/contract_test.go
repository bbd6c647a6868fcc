package apitest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// stubTransport answers every request with one canned response, so that
// the contract check itself can be shown to fail.
type stubTransport struct {
	status      int
	contentType string
	body        string
}

func (st stubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	if st.contentType != "" {
		h.Set("Content-Type", st.contentType)
	}
	return &http.Response{StatusCode: st.status, Header: h, Body: io.NopCloser(strings.NewReader(st.body)), Request: req}, nil
}

// TestContractTransportFailsOnMismatch: the transport every test server's
// client uses refuses undocumented fields, statuses and routes, and a
// success for a request the document calls invalid.
func TestContractTransportFailsOnMismatch(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	const problem = `{"type":"about:blank","title":"x","status":%d}`
	ticket := `{"id":"0b8f3c52-6a1e-4f7d-8c2b-91e4d5a6b7c8","number":1,"title":"t","body":"b","status":"open","priority":"normal",` +
		`"assignee_id":null,"requester_email":null,"tags":[],"created_at":"2026-11-29T09:30:00Z","updated_at":"2026-11-29T09:30:00Z","version":1}`
	cases := []struct {
		name, method, path, body string
		res                      stubTransport
		ok                       bool
	}{
		{"documented", "GET", "/healthz", "", stubTransport{200, "application/json", `{"status":"ok"}`}, true},
		{"undocumented field", "GET", "/healthz", "", stubTransport{200, "application/json", `{"status":"ok","uptime":3}`}, false},
		{"undocumented status", "GET", "/healthz", "", stubTransport{418, "application/problem+json", strings.Replace(problem, "%d", "418", 1)}, false},
		{"wrong type", "GET", "/readyz", "", stubTransport{200, "application/json", `{"status":"ready","checks":{"db":1}}`}, false},
		{"unknown route 404", "GET", "/nowhere", "", stubTransport{404, "application/problem+json", strings.Replace(problem, "%d", "404", 1)}, true},
		{"unknown route served", "GET", "/nowhere", "", stubTransport{200, "application/json", `{}`}, false},
		{"ticket", "POST", "/t/acme/api/v1/tickets", `{"title":"t","body":"b"}`, stubTransport{201, "application/json", ticket}, true},
		{"ticket missing field", "POST", "/t/acme/api/v1/tickets", `{"title":"t","body":"b"}`,
			stubTransport{201, "application/json", strings.Replace(ticket, `"version":1`, `"v":1`, 1)}, false},
		{"invalid request refused", "POST", "/t/acme/api/v1/tickets", `{"title":"t","priority":"asap"}`,
			stubTransport{422, "application/problem+json", strings.Replace(problem, "%d", "422", 1)}, true},
		{"invalid request accepted", "POST", "/t/acme/api/v1/tickets", `{"title":"t","priority":"asap"}`, stubTransport{201, "application/json", ticket}, false},
		{"dot segments redirected", "GET", "/t/acme/api/v1/tickets/../me", "", stubTransport{301, "", ""}, true},
		{"clean path redirected", "GET", "/t/acme/api/v1/me", "", stubTransport{301, "", ""}, false},
		{"undocumented problem status", "POST", "/t/acme/api/v1/tickets", `{"title":"t"}`,
			stubTransport{500, "application/problem+json", strings.Replace(problem, "%d", "500", 1)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ct := &contractTransport{base: tc.res, c: c, server: &Server{}}
			req, err := http.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer x")
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := ct.RoundTrip(req)
			if res != nil {
				_ = res.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("want ok=%v, got %v", tc.ok, err)
			}
		})
	}
}
