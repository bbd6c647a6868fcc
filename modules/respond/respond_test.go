package respond_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// result is one request through obs.Middleware to respond.Error.
type result struct {
	rec  *httptest.ResponseRecorder
	body map[string]any
	logs []map[string]any
}

// line returns the first log line with msg, or nil.
func (r result) line(msg string) map[string]any {
	for _, l := range r.logs {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// errorLines counts lines logged at ERROR.
func (r result) errorLines() int {
	n := 0
	for _, l := range r.logs {
		if l["level"] == "ERROR" {
			n++
		}
	}
	return n
}

// answer runs respond.Error(err) behind the real request middleware, with
// ctx as the request's context.
func answer(t *testing.T, ctx context.Context, err error) result {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	h := obs.NewMetrics().Middleware(log)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, err)
	}))
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/t/acme/api/v1/tickets", nil)
	req.Header.Set("X-Request-Id", "req-42")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	out := result{rec: rec}
	_ = json.Unmarshal(rec.Body.Bytes(), &out.body)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil {
			out.logs = append(out.logs, l)
		}
	}
	return out
}

// TestUnmappedErrorIs500WithRequestID is issue 10.7: a 500's log line is
// written with the request-scoped logger and carries the request id, while
// the client sees no internal text.
func TestUnmappedErrorIs500WithRequestID(t *testing.T) {
	t.Parallel()
	res := answer(t, context.Background(), errors.New("insert into secret_table: boom"))
	if res.rec.Code != 500 || strings.Contains(res.rec.Body.String(), "secret_table") {
		t.Fatalf("answer: %d %s", res.rec.Code, res.rec.Body)
	}
	l := res.line("request failed")
	if l == nil || l["level"] != "ERROR" || l["request_id"] != "req-42" || l["method"] != "GET" || !strings.Contains(fmt.Sprint(l["err"]), "secret_table") {
		t.Fatalf("500 log line %v in %v", l, res.logs)
	}
}

// TestClientClosedRequest is issue 9.5: a request whose client went away is
// logged as "client closed request" with 499, not as an ERROR and a 500.
func TestClientClosedRequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := answer(t, ctx, fmt.Errorf("list tickets: %w", ctx.Err()))
	if res.rec.Code != respond.StatusClientClosed {
		t.Fatalf("status %d, want 499", res.rec.Code)
	}
	if l := res.line("client closed request"); l == nil || l["level"] != "INFO" || l["request_id"] != "req-42" {
		t.Fatalf("no client-closed line: %v", res.logs)
	}
	if l := res.line("request"); l == nil || l["status"] != float64(499) {
		t.Fatalf("request line: %v", l)
	}
	if n := res.errorLines(); n != 0 {
		t.Fatalf("%d ERROR lines: %v", n, res.logs)
	}
}

// TestUnreachableDatabaseIs503 is issue 21.3: a real connection failure
// answers 503 with Retry-After and without the error's text (host, port).
func TestUnreachableDatabaseIs503(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback: nothing listens, the dial is refused.
	_, err := pgx.Connect(context.Background(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	if err == nil {
		t.Fatal("connected to port 1")
	}
	res := answer(t, context.Background(), fmt.Errorf("load tenant: %w", err))
	if res.rec.Code != 503 || res.rec.Header().Get("Retry-After") == "" || res.body["status"] != float64(503) {
		t.Fatalf("answer: %d %v %s", res.rec.Code, res.rec.Header(), res.rec.Body)
	}
	if strings.Contains(res.rec.Body.String(), "127.0.0.1") || strings.Contains(res.rec.Body.String(), "dial") {
		t.Fatalf("error text leaked: %s", res.rec.Body)
	}
	if n := res.errorLines(); n != 0 {
		t.Fatalf("%d ERROR lines for a dependency outage: %v", n, res.logs)
	}
}

// TestDatabaseRefusedValueIs422 is the safety net behind edge validation: a
// value PostgreSQL itself refuses (here a NUL in text) answers 422, not 500.
func TestDatabaseRefusedValueIs422(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tenancytest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, `SELECT $1::text`, "a\x00b").Scan(&s)
	if err == nil {
		t.Fatal("PostgreSQL stored a NUL")
	}
	res := answer(t, ctx, fmt.Errorf("insert ticket: %w", err))
	if res.rec.Code != 422 || strings.Contains(res.rec.Body.String(), "0x00") {
		t.Fatalf("answer: %d %s", res.rec.Code, res.rec.Body)
	}
}

func TestSentinelsAndProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		detail string
		retry  string
	}{
		{"not found wrapped", fmt.Errorf("ticket 7: %w", errs.ErrNotFound), 404, "not found", ""},
		{"problem detail", errs.Errorf(errs.ErrInvalid, "title is too long"), 422, "title is too long", ""},
		{"rate limited", &errs.Problem{Kind: errs.ErrRateLimited, Detail: "slow down", RetryAfter: 7}, 429, "slow down", "7"},
		{"unavailable default retry", errs.Errorf(errs.ErrUnavailable, "moving"), 503, "moving", "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := answer(t, context.Background(), tc.err)
			if res.rec.Code != tc.status || res.body["detail"] != tc.detail || res.rec.Header().Get("Retry-After") != tc.retry ||
				res.rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("answer: %d %v %s", res.rec.Code, res.rec.Header(), res.rec.Body)
			}
			if res.errorLines() != 0 {
				t.Fatalf("ERROR logged for a %d", tc.status)
			}
		})
	}
}
