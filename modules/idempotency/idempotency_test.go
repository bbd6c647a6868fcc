package idempotency_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/idempotency"
	"github.com/patchdesk/patchdesk/tenancy"
)

// count returns how many rows of table the tenant has.
func count(t *testing.T, s *apitest.Server, slug, table string) int {
	t.Helper()
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetryReplaysFirstResponse: every creating POST, sent twice with one
// key, has one effect and answers the second time with the first response,
// status and body, marked as replayed. The same JSON spelled differently
// (key order, spacing) is the same request.
func TestRetryReplaysFirstResponse(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-replay")
	base := "/t/idem-replay/api/v1"
	first := s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "seed", "body": "x"})
	if first.Status != 201 {
		t.Fatalf("seed ticket: %s", first)
	}
	cases := []struct {
		name, path, body, respelt, table string
		status                           int
	}{
		{"ticket", "/tickets", `{"title":"printer","body":"on fire","tags":["hw"]}`, `{ "tags": ["hw"], "body": "on fire", "title": "printer" }`, "tickets", 201},
		{"comment", "/tickets/1/comments", `{"body":"on it","internal":true}`, `{"internal":true,  "body":"on it"}`, "comments", 201},
		{"member", "/members", `{"email":"new@idem.test","name":"New","role":"agent","password":"a long password"}`,
			`{"role":"agent","name":"New","email":"new@idem.test","password":"a long password"}`, "members", 201},
		{"token", "/tokens", `{"name":"ci"}`, `{ "name" : "ci" }`, "tokens", 201},
		{"webhook", "/webhooks", `{"url":"http://127.0.0.1:9/hook","events":["*"]}`, `{"events":["*"],"url":"http://127.0.0.1:9/hook"}`, "webhooks", 201},
		{"export", "/reports/exports", `{}`, `{ }`, "report_exports", 202},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := count(t, s, "idem-replay", c.table)
			key := "key-" + c.name
			a := s.Call(t, "POST", base+c.path, owner, c.body, idempotency.Header, key)
			if a.Status != c.status || a.Header.Get(idempotency.ReplayedHeader) != "" {
				t.Fatalf("first: %s", a)
			}
			b := s.Call(t, "POST", base+c.path, owner, c.respelt, idempotency.Header, key)
			if b.Status != a.Status || string(b.Body) != string(a.Body) || b.Header.Get(idempotency.ReplayedHeader) != "true" ||
				b.Header.Get("Content-Type") != a.Header.Get("Content-Type") || b.Header.Get("Location") != a.Header.Get("Location") {
				t.Fatalf("replay differs:\nfirst  %s %v\nreplay %s %v", a, a.Header, b, b.Header)
			}
			if got := count(t, s, "idem-replay", c.table); got != before+1 {
				t.Fatalf("%s rows: %d before, %d after two requests with one key", c.table, before, got)
			}
		})
	}
}

// TestSameKeyDifferentRequestIs422: the key names one request; reusing it
// for another body or another path is refused and does nothing.
func TestSameKeyDifferentRequestIs422(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-differ")
	base := "/t/idem-differ/api/v1"
	if r := s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "a", "body": "x"}, idempotency.Header, "k1"); r.Status != 201 {
		t.Fatalf("first: %s", r)
	}
	if r := s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "b", "body": "x"}, idempotency.Header, "k1"); !r.IsProblem(422) ||
		!strings.Contains(r.JSON["detail"].(string), "different request") {
		t.Fatalf("other body: %s", r)
	}
	if r := s.Call(t, "POST", base+"/tokens", owner, map[string]any{"name": "x"}, idempotency.Header, "k1"); !r.IsProblem(422) {
		t.Fatalf("other path: %s", r)
	}
	if n := count(t, s, "idem-differ", "tickets"); n != 1 {
		t.Fatalf("%d tickets, want 1", n)
	}
}

// TestKeysArePerCaller: two members (and two tenants) using the same key
// are two requests.
func TestKeysArePerCaller(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-callers")
	agent := s.AddMember(t, "idem-callers", owner, "agent")
	other := s.Signup(t, "idem-callers2")
	body := map[string]any{"title": "same", "body": "same"}
	for _, c := range []struct{ slug, token string }{{"idem-callers", owner}, {"idem-callers", agent.Token}, {"idem-callers2", other}} {
		if r := s.Call(t, "POST", "/t/"+c.slug+"/api/v1/tickets", c.token, body, idempotency.Header, "shared"); r.Status != 201 || r.Header.Get(idempotency.ReplayedHeader) != "" {
			t.Fatalf("%s: %s", c.slug, r)
		}
	}
	if n := count(t, s, "idem-callers", "tickets"); n != 2 {
		t.Fatalf("%d tickets, want one per member", n)
	}
}

// TestConcurrentDuplicatesHaveOneEffect sends one request many times at
// once: exactly one ticket (one timeline, one outbox event) is written, and
// every answer is that ticket (the duplicates wait for the first) or 409.
func TestConcurrentDuplicatesHaveOneEffect(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-race")
	const n = 12
	for round := range 3 {
		key := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		res := make([]apitest.Resp, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				res[i] = s.Call(t, "POST", "/t/idem-race/api/v1/tickets", owner,
					map[string]any{"title": "race " + key, "body": "x"}, idempotency.Header, key)
			})
		}
		close(start)
		wg.Wait()
		var created []apitest.Resp
		for _, r := range res {
			switch {
			case r.Status == 201:
				created = append(created, r)
			case r.IsProblem(409):
			default:
				t.Fatalf("round %d: unexpected answer %s", round, r)
			}
		}
		if len(created) == 0 {
			t.Fatalf("round %d: nobody got the ticket", round)
		}
		for _, r := range created[1:] {
			if string(r.Body) != string(created[0].Body) {
				t.Fatalf("round %d: two different tickets:\n%s\n%s", round, created[0], r)
			}
		}
	}
	if got := count(t, s, "idem-race", "tickets"); got != 3 {
		t.Fatalf("%d tickets after 3 rounds of %d duplicates", got, n)
	}
	if got := count(t, s, "idem-race", "ticket_events"); got != 3 {
		t.Fatalf("%d timeline events after 3 rounds, want 3", got)
	}
}

// TestConcurrentDifferentBodies: racing requests with one key and different
// bodies: one wins, every other is 422 (or 409 while undecided), one ticket.
func TestConcurrentDifferentBodies(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-race2")
	const n = 8
	var wg sync.WaitGroup
	res := make([]apitest.Resp, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			res[i] = s.Call(t, "POST", "/t/idem-race2/api/v1/tickets", owner,
				map[string]any{"title": fmt.Sprint("body ", i), "body": "x"}, idempotency.Header, "one-key")
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, r := range res {
		switch {
		case r.Status == 201:
			won++
		case r.IsProblem(422), r.IsProblem(409):
		default:
			t.Fatalf("unexpected answer %s", r)
		}
	}
	if won != 1 || count(t, s, "idem-race2", "tickets") != 1 {
		t.Fatalf("%d requests won, %d tickets; want 1 and 1", won, count(t, s, "idem-race2", "tickets"))
	}
}

// TestRequestsWithoutEffectAreNotRemembered: a request that wrote nothing
// (refused by validation or authorization) does not bind the key, so the
// corrected request may use it.
func TestRequestsWithoutEffectAreNotRemembered(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-fix")
	base := "/t/idem-fix/api/v1"
	if r := s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "", "body": "x"}, idempotency.Header, "fix"); !r.IsProblem(422) {
		t.Fatalf("invalid: %s", r)
	}
	if r := s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "ok", "body": "x"}, idempotency.Header, "fix"); r.Status != 201 || r.Header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("corrected: %s", r)
	}
}

// TestBadKeyIs400: an empty, overlong or non-ASCII key is refused before
// anything runs.
func TestBadKeyIs400(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-bad")
	for _, k := range []string{"", strings.Repeat("k", 256), "caf\u00e9", "tab\there"} {
		r := s.Call(t, "POST", "/t/idem-bad/api/v1/tickets", owner, map[string]any{"title": "a", "body": "x"}, idempotency.Header, k)
		if !r.IsProblem(400) {
			t.Errorf("key %q: %s", k, r)
		}
	}
	if n := count(t, s, "idem-bad", "tickets"); n != 0 {
		t.Fatalf("%d tickets written with bad keys", n)
	}
}

// TestStoredResponsesHoldNoSecret: the table keeps neither the key nor a
// readable response, so a new API token is not readable from it.
func TestStoredResponsesHoldNoSecret(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-secret")
	r := s.Call(t, "POST", "/t/idem-secret/api/v1/tokens", owner, map[string]any{"name": "ci"}, idempotency.Header, "secret-key-1")
	if r.Status != 201 {
		t.Fatal(r)
	}
	tn, _ := s.Reg.Lookup(context.Background(), "idem-secret")
	var dump string
	if err := s.Admin(t).QueryRow(context.Background(), `SELECT string_agg(t::text, ' ') FROM `+
		pgx.Identifier{tn.Schema, "idempotency_keys"}.Sanitize()+` t`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	token := r.JSON["token"].(string)
	if dump == "" || strings.Contains(dump, token) || strings.Contains(dump, "secret-key-1") ||
		strings.Contains(dump, fmt.Sprintf("%x", token)) {
		t.Fatalf("the stored row shows the key or the token: %s", dump)
	}
}

// TestUnrecordedResponseIs409: when the effect committed but its response
// was never recorded (the process stopped in between), a retry does not do
// it again: it gets 409 telling it so.
func TestUnrecordedResponseIs409(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.Idempotency.Wait = 300 * time.Millisecond })
	owner := s.Signup(t, "idem-crash")
	body := map[string]any{"title": "a", "body": "x"}
	if r := s.Call(t, "POST", "/t/idem-crash/api/v1/tickets", owner, body, idempotency.Header, "k"); r.Status != 201 {
		t.Fatal(r)
	}
	tn, _ := s.Reg.Lookup(context.Background(), "idem-crash")
	if _, err := s.Admin(t).Exec(context.Background(), `UPDATE `+pgx.Identifier{tn.Schema, "idempotency_keys"}.Sanitize()+
		` SET status = NULL, response = NULL`); err != nil {
		t.Fatal(err)
	}
	r := s.Call(t, "POST", "/t/idem-crash/api/v1/tickets", owner, body, idempotency.Header, "k")
	if !r.IsProblem(409) || r.Header.Get("Retry-After") == "" || !strings.Contains(r.JSON["detail"].(string), "took effect") {
		t.Fatalf("retry after a lost response: %s", r)
	}
	if n := count(t, s, "idem-crash", "tickets"); n != 1 {
		t.Fatalf("%d tickets", n)
	}
}

// TestExpiry: keys older than 24 hours no longer replay (the request runs
// again) and the expiry job deletes them.
func TestExpiry(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-old")
	body := map[string]any{"title": "a", "body": "x"}
	for _, k := range []string{"old", "older"} {
		if r := s.Call(t, "POST", "/t/idem-old/api/v1/tickets", owner, body, idempotency.Header, k); r.Status != 201 {
			t.Fatal(r)
		}
	}
	ctx := context.Background()
	tn, _ := s.Reg.Lookup(ctx, "idem-old")
	if _, err := s.Admin(t).Exec(ctx, `UPDATE `+pgx.Identifier{tn.Schema, "idempotency_keys"}.Sanitize()+
		` SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	r := s.Call(t, "POST", "/t/idem-old/api/v1/tickets", owner, body, idempotency.Header, "old")
	if r.Status != 201 || r.Header.Get(idempotency.ReplayedHeader) != "" || r.JSON["number"] != float64(3) {
		t.Fatalf("an expired key must run the request again: %s", r)
	}
	store, err := idempotency.NewStore(idempotency.Config{}, s.Reg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := store.Expire(ctx, s.Reg, "", time.Now().Add(-idempotency.TTL))
	if err != nil || n != 1 {
		t.Fatalf("expired %d keys (%v), want the one left old", n, err)
	}
	if got := count(t, s, "idem-old", "idempotency_keys"); got != 1 {
		t.Fatalf("%d keys left, want the renewed one", got)
	}
}

// TestExpiryJobIsScheduled: the periodic expiry job runs on the database's
// River queue and deletes old keys by itself.
func TestExpiryJobIsScheduled(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.IdempotencyExpireEvery = 200 * time.Millisecond })
	owner := s.Signup(t, "idem-job")
	if r := s.Call(t, "POST", "/t/idem-job/api/v1/tickets", owner, map[string]any{"title": "a", "body": "x"}, idempotency.Header, "k"); r.Status != 201 {
		t.Fatal(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.App.Jobs.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tn, _ := s.Reg.Lookup(ctx, "idem-job")
	if _, err := s.Admin(t).Exec(ctx, `UPDATE `+pgx.Identifier{tn.Schema, "idempotency_keys"}.Sanitize()+
		` SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, "the expiry job to delete the old key", func() bool {
		return count(t, s, "idem-job", "idempotency_keys") == 0
	})
}

// TestOnlyPOSTIsKeyed: a GET with the header is served as usual.
func TestOnlyPOSTIsKeyed(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "idem-get")
	if r := s.Call(t, "GET", "/t/idem-get/api/v1/tickets", owner, nil, idempotency.Header, ""); r.Status != http.StatusOK {
		t.Fatal(r)
	}
}
