package walk_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/members"
)

// FuzzRouter sends the whole handler (real database behind it) requests
// with fuzzed method, path, query and body, with and without a valid
// token: none may answer 5xx or log an ERROR.
func FuzzRouter(f *testing.F) {
	s := apitest.New(f, func(c *api.Config) {
		c.TokenPerMinute, c.TenantPerMinute = 1e9, 1e9
		c.MembersHTTP = members.HandlerConfig{SignupsPerMinute: 1e9, LoginsPerMinute: 1e9, LoginsPerIPPerMinute: 1e9, AuthFailuresPerMinute: 1e9}
	})
	owner := s.Signup(f, "fuzz")
	s.Call(f, "POST", "/t/fuzz/api/v1/tickets", owner, map[string]any{"title": "seed", "body": "x"})
	seeds := []struct {
		method, path, query, body string
	}{
		{"GET", "/t/fuzz/api/v1/tickets", "limit=5", ""},
		{"GET", "/t/\xff/api/v1/me", "", ""},
		{"GET", "/t/\x00/api/v1/me", "", ""},
		{"GET", "/t/fuzz/api/v1/tickets", "cursor=%FF", ""},
		{"GET", "/t/fuzz/api/v1/tickets", "status=%00", ""},
		{"GET", "/t/fuzz/api/v1/tickets", "cursor=" + cursorOf(`{"u":"9999-12-31T23:59:59Z"}`), ""},
		{"GET", "/t/fuzz/api/v1/search", "q=%22%5C", ""},
		{"GET", "/t/fuzz/api/v1/reports/summary", "from=0000-01-01&to=9999-12-31", ""},
		{"GET", "/t/fuzz/api/v1/audit", "target=ticket:99999999999999999999", ""},
		{"GET", "/t/fuzz/api/v1/tickets/99999999999999999999", "", ""},
		{"PATCH", "/t/fuzz/api/v1/tickets/1", "", `{"title":"a\u0000"}`},
		{"POST", "/t/fuzz/api/v1/tickets", "", `{"title":"x","Title":"y"}`},
		{"POST", "/t/fuzz/api/v1/tickets", "", "{\"title\":\"\xff\"}"},
		{"POST", "/t/fuzz/api/v1/webhooks", "", `{"url":"http://` + strings.Repeat("a", 2001) + `","events":["*"]}`},
		{"POST", "/api/v1/signup", "", `{"slug":"x\u0000","name":"n","admin_email":"a@b.test","admin_name":"a","password":"p"}`},
		{"BREW", "/healthz", "", ""},
		{"GET", "/metrics", "", ""},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.query, []byte(sd.body), true)
		f.Add(sd.method, sd.path, sd.query, []byte(sd.body), false)
	}
	h := s.App.Handler
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte, withToken bool) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") {
			return // net/http refuses these before any handler runs
		}
		req := &http.Request{
			Method: method, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{},
			Host: "127.0.0.1", RemoteAddr: "127.0.0.1:1234", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		req = req.WithContext(t.Context())
		req.Body = http.NoBody
		if len(body) > 0 {
			req.Body, req.ContentLength = readCloser{bytes.NewReader(body)}, int64(len(body))
			req.Header.Set("Content-Type", "application/json")
		}
		if withToken {
			req.Header.Set("Authorization", "Bearer "+owner)
		}
		before := len(s.Logs.String())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q ?%q body %q → %d %s", method, path, query, body, rec.Code, rec.Body)
		}
		if logs := s.Logs.String()[before:]; strings.Contains(logs, `"level":"ERROR"`) {
			t.Fatalf("%s %q ?%q body %q logged an ERROR: %.500s", method, path, query, body, logs)
		}
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// validMethod is net/http's rule for a method token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return true
}
