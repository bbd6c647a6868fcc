package tickets_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/tickets"
)

type tenant struct {
	s    *apitest.Server
	slug string
	// tokens by role; "owner" is the signup owner.
	tok map[string]string
	ids map[string]string
	// customer is the customer member (their email is the requester).
	customer apitest.Member
}

func setup(t *testing.T, s *apitest.Server, slug string) *tenant {
	t.Helper()
	owner := s.Signup(t, slug)
	tn := &tenant{s: s, slug: slug, tok: map[string]string{"owner": owner}, ids: map[string]string{}}
	for _, role := range []string{"admin", "agent", "light_agent", "viewer", "customer"} {
		m := s.AddMember(t, slug, owner, role)
		tn.tok[role], tn.ids[role] = m.Token, m.ID
		if role == "customer" {
			tn.customer = m
		}
	}
	return tn
}

func (tn *tenant) call(t *testing.T, role, method, path string, body any, headers ...string) apitest.Resp {
	t.Helper()
	return tn.s.Call(t, method, "/t/"+tn.slug+"/api/v1"+path, tn.tok[role], body, headers...)
}

func (tn *tenant) create(t *testing.T, role string, body map[string]any) map[string]any {
	t.Helper()
	r := tn.call(t, role, "POST", "/tickets", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create ticket as %s: %s", role, r)
	}
	return r.JSON
}

func num(ticket map[string]any) string { return strconv.Itoa(int(ticket["number"].(float64))) }

// drive moves a fresh ticket to status via a legal path, as the owner.
func (tn *tenant) drive(t *testing.T, status string) map[string]any {
	t.Helper()
	tk := tn.create(t, "owner", map[string]any{"title": "drive to " + status, "body": "x"})
	path := map[string][]string{
		"open": {}, "in_progress": {"in_progress"}, "pending": {"pending"}, "resolved": {"resolved"}, "closed": {"closed"},
	}[status]
	for _, st := range path {
		r := tn.call(t, "owner", "PATCH", "/tickets/"+num(tk), map[string]any{"status": st})
		if r.Status != 200 {
			t.Fatalf("drive to %s: %s", st, r)
		}
		tk = r.JSON
	}
	return tk
}

func TestStateMachineEveryPair(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "states")
	allowed := map[string][]string{
		"open":        {"in_progress", "pending", "resolved", "closed"},
		"in_progress": {"pending", "resolved", "open"},
		"pending":     {"in_progress", "open", "resolved"},
		"resolved":    {"closed", "open"},
		"closed":      {"open"},
	}
	for _, from := range tickets.Statuses {
		for _, to := range tickets.Statuses {
			t.Run(from+"→"+to, func(t *testing.T) {
				tk := tn.drive(t, from)
				events := len(tn.call(t, "owner", "GET", "/tickets/"+num(tk)+"/events", nil).Items())
				r := tn.call(t, "owner", "PATCH", "/tickets/"+num(tk), map[string]any{"status": to})
				after := tn.call(t, "owner", "GET", "/tickets/"+num(tk), nil).JSON
				newEvents := len(tn.call(t, "owner", "GET", "/tickets/"+num(tk)+"/events", nil).Items()) - events
				switch {
				case from == to:
					if r.Status != 200 || after["version"] != tk["version"] || newEvents != 0 {
						t.Fatalf("no-op %s: %s, %d new events", from, r, newEvents)
					}
				case slices.Contains(allowed[from], to):
					if r.Status != 200 || after["status"] != to || newEvents != 1 {
						t.Fatalf("allowed %s→%s: %s, %d new events", from, to, r, newEvents)
					}
				default:
					if !r.IsProblem(422) || after["status"] != from || after["version"] != tk["version"] || newEvents != 0 {
						t.Fatalf("illegal %s→%s: %s; after %v v%v, %d new events", from, to, r, after["status"], after["version"], newEvents)
					}
				}
			})
		}
	}
}

func TestReopenRules(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "reopen")
	closed := func() string {
		tk := tn.create(t, "agent", map[string]any{"title": "closing", "body": "x", "requester_email": tn.customer.Email})
		if r := tn.call(t, "agent", "PATCH", "/tickets/"+num(tk), map[string]any{"status": "closed"}); r.Status != 200 {
			t.Fatalf("close: %s", r)
		}
		return num(tk)
	}
	n := closed()
	if r := tn.call(t, "agent", "PATCH", "/tickets/"+n, map[string]any{"status": "open"}); !r.IsProblem(403) {
		t.Errorf("agent reopening a closed ticket: %s", r)
	}
	if r := tn.call(t, "admin", "PATCH", "/tickets/"+n, map[string]any{"status": "open"}); r.Status != 200 {
		t.Errorf("admin reopening: %s", r)
	}
	audit := tn.call(t, "owner", "GET", "/audit?target=ticket:"+n, nil)
	if len(audit.Items()) != 1 || audit.Items()[0]["action"] != "ticket.reopened" {
		t.Errorf("reopen not audited: %s", audit)
	}
	// A requester's reply within the window reopens.
	n = closed()
	if r := tn.call(t, "customer", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "still broken"}); r.Status != 201 {
		t.Fatalf("customer reply: %s", r)
	}
	if st := tn.call(t, "owner", "GET", "/tickets/"+n, nil).JSON["status"]; st != "open" {
		t.Errorf("customer reply left ticket %v", st)
	}
	// A staff reply does not.
	n = closed()
	tn.call(t, "agent", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "fyi"})
	if st := tn.call(t, "owner", "GET", "/tickets/"+n, nil).JSON["status"]; st != "closed" {
		t.Errorf("agent reply changed status to %v", st)
	}
}

func TestRolePermissionsOverAPI(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "perms")
	tk := tn.create(t, "agent", map[string]any{"title": "Printer", "body": "jam", "requester_email": tn.customer.Email})
	other := tn.create(t, "agent", map[string]any{"title": "Someone else's", "body": "secret", "requester_email": "other@perms.test"})
	n, on := num(tk), num(other)

	if r := tn.call(t, "viewer", "PATCH", "/tickets/"+n, map[string]any{"priority": "high"}); !r.IsProblem(403) {
		t.Errorf("viewer PATCH: %s", r)
	}
	if r := tn.call(t, "viewer", "GET", "/tickets/"+n, nil); r.Status != 200 {
		t.Errorf("viewer GET: %s", r)
	}
	if r := tn.call(t, "agent", "DELETE", "/tickets/"+n, nil); !r.IsProblem(403) {
		t.Errorf("agent DELETE: %s", r)
	}
	if r := tn.call(t, "light_agent", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "public?"}); !r.IsProblem(403) {
		t.Errorf("light_agent public reply: %s", r)
	}
	if r := tn.call(t, "light_agent", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "note", "internal": true}); r.Status != 201 {
		t.Errorf("light_agent internal note: %s", r)
	}
	if r := tn.call(t, "light_agent", "PATCH", "/tickets/"+n, map[string]any{"status": "pending"}); !r.IsProblem(403) {
		t.Errorf("light_agent PATCH: %s", r)
	}
	tn.call(t, "agent", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "public reply"})

	// The customer sees their ticket and public comments only.
	comments := tn.call(t, "customer", "GET", "/tickets/"+n+"/comments", nil)
	if len(comments.Items()) != 1 || comments.Items()[0]["body"] != "public reply" {
		t.Errorf("customer comments: %s", comments)
	}
	events := tn.call(t, "customer", "GET", "/tickets/"+n+"/events", nil)
	for _, e := range events.Items() {
		if d, _ := e["data"].(map[string]any); d["internal"] == true {
			t.Errorf("customer sees an internal note event: %v", e)
		}
	}
	if staff := tn.call(t, "agent", "GET", "/tickets/"+n+"/comments", nil); len(staff.Items()) != 2 {
		t.Errorf("agent sees %d comments, want 2", len(staff.Items()))
	}
	for _, path := range []string{"/tickets/" + on, "/tickets/" + on + "/comments", "/tickets/" + on + "/events"} {
		if r := tn.call(t, "customer", "GET", path, nil); !r.IsProblem(404) {
			t.Errorf("customer GET another requester's %s: %s", path, r)
		}
	}
	if r := tn.call(t, "customer", "POST", "/tickets/"+on+"/comments", map[string]any{"body": "hi"}); !r.IsProblem(404) {
		t.Errorf("customer replying to another's ticket: %s", r)
	}
	list := tn.call(t, "customer", "GET", "/tickets", nil)
	if len(list.Items()) != 1 || list.Items()[0]["number"] != tk["number"] {
		t.Errorf("customer list: %s", list)
	}
	// The requester is stored canonical, so any spelling of the customer's
	// address is theirs, in the ticket and in the list filter.
	spelt := tn.create(t, "agent", map[string]any{"title": "Spelt", "body": "x", "requester_email": " " + strings.ToUpper(tn.customer.Email) + " "})
	if spelt["requester_email"] != tn.customer.Email {
		t.Errorf("requester stored as %v, want %s", spelt["requester_email"], tn.customer.Email)
	}
	if r := tn.call(t, "customer", "GET", "/tickets/"+num(spelt), nil); r.Status != 200 {
		t.Errorf("customer reading a ticket requested in another spelling: %s", r)
	}
	if list := tn.call(t, "customer", "GET", "/tickets", nil); len(list.Items()) != 2 {
		t.Errorf("customer list after a differently spelt request: %s", list)
	}
	if r := tn.call(t, "customer", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "x", "internal": true}); !r.IsProblem(403) {
		t.Errorf("customer internal note: %s", r)
	}
	if r := tn.call(t, "customer", "PATCH", "/tickets/"+n, map[string]any{"status": "closed"}); !r.IsProblem(403) {
		t.Errorf("customer PATCH: %s", r)
	}
	// Customers open tickets for themselves only.
	mine := tn.create(t, "customer", map[string]any{"title": "mine", "body": "x"})
	if mine["requester_email"] != tn.customer.Email {
		t.Errorf("customer ticket requester: %v", mine["requester_email"])
	}
	if r := tn.call(t, "customer", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "requester_email": "victim@perms.test"}); !r.IsProblem(403) {
		t.Errorf("customer opening in another's name: %s", r)
	}
	// Priority and tags are staff decisions: a customer's ticket gets the
	// default priority and no tags, and asking for more is 403 (issue 9.10).
	for _, body := range []map[string]any{
		{"title": "now!", "body": "y", "priority": "urgent"}, {"title": "x", "body": "y", "priority": "low"},
		{"title": "x", "body": "y", "tags": []string{"vip"}}, {"title": "x", "body": "y", "priority": "high", "tags": []string{"a"}},
	} {
		if r := tn.call(t, "customer", "POST", "/tickets", body); !r.IsProblem(403) {
			t.Errorf("customer creating %v: %s", body, r)
		}
	}
	if r := tn.call(t, "customer", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "priority": "normal", "tags": []string{}}); r.Status != 201 ||
		r.JSON["priority"] != "normal" || len(r.JSON["tags"].([]any)) != 0 {
		t.Errorf("customer sending the defaults explicitly: %s", r)
	}
	if r := tn.call(t, "customer", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "requester_email": " " + strings.ToUpper(tn.customer.Email)}); r.Status != 201 ||
		r.JSON["requester_email"] != tn.customer.Email {
		t.Errorf("customer naming themselves in another spelling: %s", r)
	}
	if r := tn.call(t, "agent", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "priority": "urgent", "tags": []string{"vip"}}); r.Status != 201 {
		t.Errorf("agent setting priority and tags: %s", r)
	}
	for _, role := range []string{"agent", "light_agent", "viewer", "customer"} {
		if r := tn.call(t, role, "GET", "/audit", nil); !r.IsProblem(403) {
			t.Errorf("%s reading audit: %s", role, r)
		}
	}
	for _, role := range []string{"owner", "admin"} {
		if r := tn.call(t, role, "GET", "/audit", nil); r.Status != 200 {
			t.Errorf("%s reading audit: %s", role, r)
		}
	}
	// Assignment: only assignable roles, only by agents and up.
	if r := tn.call(t, "agent", "PATCH", "/tickets/"+n, map[string]any{"assignee_id": tn.ids["viewer"]}); !r.IsProblem(422) {
		t.Errorf("assigning a viewer: %s", r)
	}
	if r := tn.call(t, "agent", "PATCH", "/tickets/"+n, map[string]any{"assignee_id": tn.ids["agent"]}); r.Status != 200 || r.JSON["assignee_id"] != tn.ids["agent"] {
		t.Errorf("assign agent: %s", r)
	}
	if r := tn.call(t, "agent", "PATCH", "/tickets/"+n, map[string]any{"assignee_id": nil}); r.Status != 200 || r.JSON["assignee_id"] != nil {
		t.Errorf("unassign: %s", r)
	}
	if r := tn.call(t, "admin", "DELETE", "/tickets/"+n, nil); r.Status != 204 {
		t.Errorf("admin DELETE: %s", r)
	}
	if r := tn.call(t, "admin", "GET", "/tickets/"+n, nil); !r.IsProblem(404) {
		t.Errorf("deleted ticket still served: %s", r)
	}
	audit := tn.call(t, "owner", "GET", "/audit?target=ticket:"+n, nil)
	if len(audit.Items()) != 1 || audit.Items()[0]["action"] != "ticket.deleted" {
		t.Errorf("delete not audited: %s", audit)
	}
}

func TestTimelineAndFilters(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "timeline")
	tk := tn.create(t, "owner", map[string]any{"title": "Printer", "body": "jam", "priority": "high", "tags": []string{"hw"}})
	n := num(tk)
	steps := []map[string]any{
		{"status": "in_progress"}, {"assignee_id": tn.ids["agent"]}, {"priority": "urgent"},
		{"tags": []string{"hw", "floor-3"}}, {"title": "Printer on fire"},
	}
	for _, p := range steps {
		if r := tn.call(t, "owner", "PATCH", "/tickets/"+n, p); r.Status != 200 {
			t.Fatalf("patch %v: %s", p, r)
		}
	}
	tn.call(t, "owner", "POST", "/tickets/"+n+"/comments", map[string]any{"body": "on it"})
	var types []string
	for _, e := range tn.call(t, "owner", "GET", "/tickets/"+n+"/events", nil).Items() {
		types = append(types, e["type"].(string))
	}
	want := []string{"created", "status_changed", "assigned", "priority_changed", "tags_changed", "title_changed", "commented"}
	if !slices.Equal(types, want) {
		t.Fatalf("timeline %v, want %v", types, want)
	}
	ev := tn.call(t, "owner", "GET", "/tickets/"+n+"/events?limit=1", nil)
	if d := tn.call(t, "owner", "GET", "/tickets/"+n+"/events?limit=2&cursor="+ev.JSON["next_cursor"].(string), nil).Items(); d[0]["type"] != "status_changed" {
		t.Errorf("events cursor: %v", d)
	}
	second := tn.create(t, "owner", map[string]any{"title": "Other", "body": "x", "priority": "low"})
	for _, f := range []struct {
		query string
		want  []string
	}{
		{"status=in_progress", []string{n}},
		{"status=open", []string{num(second)}},
		{"priority=low", []string{num(second)}},
		{"tag=floor-3", []string{n}},
		{"assignee_id=" + tn.ids["agent"], []string{n}},
		{"", []string{num(second), n}},
	} {
		var got []string
		for _, it := range tn.call(t, "owner", "GET", "/tickets?"+f.query, nil).Items() {
			got = append(got, num(it))
		}
		if !slices.Equal(got, f.want) {
			t.Errorf("filter %q: %v, want %v", f.query, got, f.want)
		}
	}
	for _, q := range []string{"status=nope", "priority=x", "assignee_id=notauuid", "limit=0", "limit=101", "cursor=!!"} {
		if r := tn.call(t, "owner", "GET", "/tickets?"+q, nil); !r.IsProblem(400) {
			t.Errorf("bad list query %q: %s", q, r)
		}
	}
}

func TestConcurrentIfMatchOneWins(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "ifmatch")
	tk := tn.create(t, "owner", map[string]any{"title": "race", "body": "x"})
	v := strconv.Itoa(int(tk["version"].(float64)))
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, prio := range []string{"high", "low"} {
		wg.Go(func() {
			codes[i] = tn.call(t, "owner", "PATCH", "/tickets/"+num(tk), map[string]any{"priority": prio}, "If-Match", v).Status
		})
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != 200 || codes[1] != 409 {
		t.Fatalf("two PATCHes with the same If-Match: %v, want one 200 and one 409", codes)
	}
}

func TestConcurrentCreatesGapFreeNumbers(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "numbers")
	const n = 50
	numbers := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := tn.call(t, "agent", "POST", "/tickets", map[string]any{"title": fmt.Sprintf("t%d", i), "body": "x"})
			if r.Status == 201 {
				numbers[i] = int(r.JSON["number"].(float64))
			}
		})
	}
	wg.Wait()
	slices.Sort(numbers)
	for i, got := range numbers {
		if got != i+1 {
			t.Fatalf("numbers %v are not exactly 1..%d", numbers, n)
		}
	}
}

func TestPaginationWalksEverything(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "pages")
	for i := range 7 {
		tn.create(t, "owner", map[string]any{"title": fmt.Sprintf("t%d", i), "body": "x"})
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		r := tn.call(t, "owner", "GET", "/tickets?limit=3&cursor="+cursor, nil)
		for _, it := range r.Items() {
			if seen[num(it)] {
				t.Fatalf("ticket %s twice", num(it))
			}
			seen[num(it)] = true
		}
		c, _ := r.JSON["next_cursor"].(string)
		if c == "" || pages > 5 {
			break
		}
		cursor = c
	}
	if len(seen) != 7 {
		t.Fatalf("walked %d tickets, want 7", len(seen))
	}
}

func TestCrossTenantTickets(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	a, b := setup(t, s, "tenant-a"), setup(t, s, "tenant-b")
	ta := a.create(t, "owner", map[string]any{"title": "A's secret", "body": "alpha"})
	tb := b.create(t, "owner", map[string]any{"title": "B's own", "body": "bravo"})
	if ta["number"] != float64(1) || tb["number"] != float64(1) {
		t.Fatalf("numbers are per tenant: A %v B %v", ta["number"], tb["number"])
	}
	routes := []struct{ method, path string }{
		{"GET", "/tickets"}, {"POST", "/tickets"}, {"GET", "/tickets/1"}, {"PATCH", "/tickets/1"}, {"DELETE", "/tickets/1"},
		{"GET", "/tickets/1/comments"}, {"POST", "/tickets/1/comments"}, {"GET", "/tickets/1/events"}, {"GET", "/audit"},
	}
	for _, role := range []string{"owner", "agent", "customer"} {
		for _, rt := range routes {
			r := s.Call(t, rt.method, "/t/tenant-a/api/v1"+rt.path, b.tok[role], map[string]any{"title": "x", "body": "y"})
			if r.Status != 401 && r.Status != 404 {
				t.Errorf("B's %s on A %s %s: %s", role, rt.method, rt.path, r)
			}
			if strings.Contains(string(r.Body), "secret") || strings.Contains(string(r.Body), "alpha") {
				t.Errorf("leak: %s", r)
			}
		}
	}
	if got := a.call(t, "owner", "GET", "/tickets/1", nil).JSON["title"]; got != "A's secret" {
		t.Errorf("A's ticket changed: %v", got)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	tn := setup(t, s, "badinput")
	tk := tn.create(t, "owner", map[string]any{"title": "stable", "body": "x"})
	n := num(tk)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
	}{
		{"malformed json", "PATCH", "/tickets/" + n, `{"title":`, 400},
		{"wrong type", "PATCH", "/tickets/" + n, map[string]any{"title": 42}, 400},
		{"unknown field", "PATCH", "/tickets/" + n, map[string]any{"colour": "red"}, 400},
		{"20k title", "PATCH", "/tickets/" + n, map[string]any{"title": strings.Repeat("x", 20_000)}, 422},
		{"empty title", "PATCH", "/tickets/" + n, map[string]any{"title": "  "}, 422},
		{"unknown status", "PATCH", "/tickets/" + n, map[string]any{"status": "done"}, 422},
		{"unknown priority", "PATCH", "/tickets/" + n, map[string]any{"priority": "asap"}, 422},
		{"too many tags", "PATCH", "/tickets/" + n, map[string]any{"tags": manyTags(21)}, 422},
		{"long tag", "PATCH", "/tickets/" + n, map[string]any{"tags": []string{strings.Repeat("t", 41)}}, 422},
		{"bad assignee", "PATCH", "/tickets/" + n, map[string]any{"assignee_id": "00000000-0000-0000-0000-000000000001"}, 422},
		{"two objects", "PATCH", "/tickets/" + n, `{"title":"a"}{"title":"b"}`, 400},
		{"bad If-Match", "PATCH", "/tickets/" + n, map[string]any{"title": "x"}, 400},
		{"body over 64 KiB", "POST", "/tickets", map[string]any{"title": "x", "body": strings.Repeat("b", 64<<10+1)}, 422},
		{"requester_email over 254", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "requester_email": strings.Repeat("r", 64) + "@" + strings.Repeat("d", 200) + ".test"}, 422},
		{"requester_email not an address", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "requester_email": "Someone <a@b.test>"}, 422},
		{"requester_email not ASCII", "POST", "/tickets", map[string]any{"title": "x", "body": "y", "requester_email": "\u0455am@b.test"}, 422},
		{"request over cap", "POST", "/tickets", map[string]any{"title": "x", "body": strings.Repeat("b", 600<<10)}, 413},
		{"empty comment", "POST", "/tickets/" + n + "/comments", map[string]any{"body": ""}, 422},
		{"non-numeric ticket", "GET", "/tickets/abc", nil, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := []string{}
			if tc.name == "bad If-Match" {
				headers = []string{"If-Match", "yesterday"}
			}
			r := tn.call(t, "owner", tc.method, tc.path, tc.body, headers...)
			if !r.IsProblem(tc.status) {
				t.Fatalf("want %d problem+json, got %s", tc.status, r)
			}
			if strings.Contains(strings.ToLower(string(r.Body)), "sql") || strings.Contains(string(r.Body), "goroutine") {
				t.Fatalf("response leaks internals: %s", r)
			}
			if field, ok := strings.CutPrefix(tc.name, "requester_email"); ok && field != "" && !strings.HasPrefix(r.JSON["detail"].(string), "requester_email ") {
				t.Fatalf("422 does not name the field: %s", r)
			}
		})
	}
	after := tn.call(t, "owner", "GET", "/tickets/"+n, nil).JSON
	if after["title"] != "stable" || after["version"] != tk["version"] {
		t.Fatalf("ticket changed by bad input: %v", after)
	}
	if ev := tn.call(t, "owner", "GET", "/tickets/"+n+"/events", nil).Items(); len(ev) != 1 {
		t.Fatalf("bad input wrote events: %v", ev)
	}
	if list := tn.call(t, "owner", "GET", "/tickets", nil).Items(); len(list) != 1 {
		t.Fatalf("bad creates wrote tickets: %d", len(list))
	}
}

func manyTags(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tag-%d", i)
	}
	return out
}
