package reports_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/reports"
)

type script struct {
	s        *apitest.Server
	ev       *apitest.Events
	owner    string
	a1, a2   apitest.Member
	customer apitest.Member
}

func (x *script) do(t *testing.T, token, method, path string, body any) apitest.Resp {
	t.Helper()
	r := x.s.Call(t, method, "/t/reporty/api/v1"+path, token, body)
	if r.Status >= 300 {
		t.Fatalf("%s %s: %s", method, path, r)
	}
	return r
}

// eventTime returns when the first timeline event of typ happened on ticket n.
func (x *script) eventTime(t *testing.T, n, typ string, match func(map[string]any) bool) time.Time {
	t.Helper()
	for _, e := range x.do(t, x.owner, "GET", "/tickets/"+n+"/events?limit=100", nil).Items() {
		if e["type"] == typ && (match == nil || match(e)) {
			at, _ := time.Parse(time.RFC3339Nano, e["created_at"].(string))
			return at
		}
	}
	t.Fatalf("ticket %s has no %s event", n, typ)
	return time.Time{}
}

func (x *script) summary(t *testing.T) reports.Summary {
	t.Helper()
	today := time.Now().UTC().Format(time.DateOnly)
	r := x.do(t, x.owner, "GET", "/reports/summary?from="+today+"&to="+today, nil)
	var s reports.Summary
	if err := jsonRoundTrip(r.JSON, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSummaryMatchesHandComputedNumbers(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	x := &script{s: s, ev: s.StartEvents(t), owner: s.Signup(t, "reporty")}
	x.a1 = s.AddMember(t, "reporty", x.owner, "agent")
	x.a2 = s.AddMember(t, "reporty", x.owner, "agent")
	x.customer = s.AddMember(t, "reporty", x.owner, "customer")
	n := func(r apitest.Resp) string { return fmt.Sprint(r.JSON["number"]) }
	t1 := n(x.do(t, x.owner, "POST", "/tickets", map[string]any{"title": "one", "body": "x", "requester_email": x.customer.Email, "assignee_id": x.a1.ID}))
	t2 := n(x.do(t, x.owner, "POST", "/tickets", map[string]any{"title": "two", "body": "x", "requester_email": x.customer.Email, "assignee_id": x.a2.ID}))
	t3 := n(x.do(t, x.owner, "POST", "/tickets", map[string]any{"title": "three", "body": "x", "requester_email": "o@x.test", "assignee_id": x.a1.ID}))
	t4 := n(x.do(t, x.owner, "POST", "/tickets", map[string]any{"title": "four", "body": "x", "requester_email": x.customer.Email}))
	x.do(t, x.owner, "DELETE", "/tickets/"+t4, nil)

	// The reports consumer is down for the rest of the script; it catches up later.
	x.ev.StopConsumer(reports.ConsumerGroup)
	x.do(t, x.a1.Token, "POST", "/tickets/"+t1+"/comments", map[string]any{"body": "first public staff reply"})
	x.do(t, x.customer.Token, "POST", "/tickets/"+t2+"/comments", map[string]any{"body": "customer nudge"})
	x.do(t, x.a2.Token, "POST", "/tickets/"+t2+"/comments", map[string]any{"body": "internal", "internal": true})
	x.do(t, x.a2.Token, "POST", "/tickets/"+t2+"/comments", map[string]any{"body": "staff reply"})
	x.do(t, x.a1.Token, "POST", "/tickets/"+t1+"/comments", map[string]any{"body": "second staff reply"})
	x.do(t, x.a1.Token, "PATCH", "/tickets/"+t1, map[string]any{"status": "resolved"})
	x.do(t, x.a1.Token, "PATCH", "/tickets/"+t3, map[string]any{"status": "closed"})
	x.do(t, x.a2.Token, "PATCH", "/tickets/"+t2, map[string]any{"status": "in_progress"})

	// Hand-computed expectations, with times read off the timeline.
	created := func(n string) time.Time { return x.eventTime(t, n, "created", nil) }
	staffReply := func(n, author string) time.Time {
		return x.eventTime(t, n, "commented", func(e map[string]any) bool {
			d := e["data"].(map[string]any)
			return e["actor_id"] == author && d["internal"] == false
		})
	}
	status := func(n, to string) time.Time {
		return x.eventTime(t, n, "status_changed", func(e map[string]any) bool { return e["data"].(map[string]any)["after"] == to })
	}
	fr1, fr2 := staffReply(t1, x.a1.ID).Sub(created(t1)).Seconds(), staffReply(t2, x.a2.ID).Sub(created(t2)).Seconds()
	res1, res3 := status(t1, "resolved").Sub(created(t1)).Seconds(), status(t3, "closed").Sub(created(t3)).Seconds()
	want := struct {
		created, resolved int
		backlog           map[string]int
		frP50, resP50     float64
	}{4, 2, map[string]int{"resolved": 1, "in_progress": 1, "closed": 1}, (fr1 + fr2) / 2, (res1 + res3) / 2}
	check := func(what string, got reports.Summary) {
		t.Helper()
		if got.Created != want.created || got.Resolved != want.resolved || !reflect.DeepEqual(got.BacklogByStatus, want.backlog) {
			t.Fatalf("%s: created %d resolved %d backlog %v; want %d %d %v", what, got.Created, got.Resolved, got.BacklogByStatus,
				want.created, want.resolved, want.backlog)
		}
		if got.FirstResponseP50S == nil || math.Abs(*got.FirstResponseP50S-want.frP50) > 1e-3 ||
			got.ResolutionP50S == nil || math.Abs(*got.ResolutionP50S-want.resP50) > 1e-3 {
			t.Fatalf("%s: p50 first response %v resolution %v; want %.6f %.6f", what, ptr(got.FirstResponseP50S), ptr(got.ResolutionP50S), want.frP50, want.resP50)
		}
		if len(got.ByAssignee) != 1 || got.ByAssignee[0].AssigneeID.String() != x.a2.ID || got.ByAssignee[0].Open != 1 {
			t.Fatalf("%s: load %+v", what, got.ByAssignee)
		}
		if len(got.ByDay) != 1 || got.ByDay[0].Created != 4 || got.ByDay[0].Resolved != 2 || got.SLABreaches != 0 {
			t.Fatalf("%s: by day %+v, sla %d", what, got.ByDay, got.SLABreaches)
		}
	}
	if got := x.summary(t); got.Resolved != 0 || got.FirstResponseP50S != nil {
		t.Fatalf("the stopped consumer applied events: %+v", got)
	}
	x.ev.StartConsumer(reports.ConsumerGroup)
	apitest.Eventually(t, 30*time.Second, "reports to catch up", func() bool {
		got := x.summary(t)
		return got.Resolved == 2 && got.FirstResponseP50S != nil && got.BacklogByStatus["in_progress"] == 1
	})
	check("live consumer after an outage", x.summary(t))

	tn, err := s.Reg.Resolve(context.Background(), "reporty")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := s.App.Reports.Rebuild(context.Background(), tn); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("rebuild %d from the timeline", i+1), x.summary(t))
	}
	if r := s.Call(t, "GET", "/t/reporty/api/v1/reports/summary", x.customer.Token, nil); !r.IsProblem(403) {
		t.Errorf("customer reading reports: %s", r)
	}
	if r := s.Call(t, "GET", "/t/reporty/api/v1/reports/summary?from=2026-13-01", x.owner, nil); !r.IsProblem(400) {
		t.Errorf("bad date: %s", r)
	}
}

func TestExportCSV(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	owner := s.Signup(t, "exporty")
	agent := s.AddMember(t, "exporty", owner, "agent")
	titles := []string{`Plain`, `Comma, "quotes" and` + "\nnewline", `=HYPERLINK("http://evil.test","click")`, `+1 call me`, `@SUM(A1)`}
	for _, title := range titles {
		if r := s.Call(t, "POST", "/t/exporty/api/v1/tickets", owner, map[string]any{"title": title, "body": "x", "assignee_id": agent.ID}); r.Status != 201 {
			t.Fatal(r)
		}
	}
	gone := s.Call(t, "POST", "/t/exporty/api/v1/tickets", owner, map[string]any{"title": "deleted one", "body": "x"})
	s.Call(t, "DELETE", fmt.Sprintf("/t/exporty/api/v1/tickets/%v", gone.JSON["number"]), owner, nil)
	other := s.Signup(t, "not-exported")
	s.Call(t, "POST", "/t/not-exported/api/v1/tickets", other, map[string]any{"title": "another tenant", "body": "x"})
	apitest.Eventually(t, 30*time.Second, "reports to see the tickets", func() bool {
		r := s.Call(t, "GET", "/t/exporty/api/v1/reports/summary", owner, nil)
		return r.JSON["created"] == float64(6) && r.JSON["backlog_by_status"].(map[string]any)["open"] == float64(5)
	})
	if r := s.Call(t, "POST", "/t/exporty/api/v1/reports/exports", agent.Token, nil); !r.IsProblem(403) {
		t.Fatalf("agent export: %s", r)
	}
	r := s.Call(t, "POST", "/t/exporty/api/v1/reports/exports", owner, nil)
	if r.Status != 202 {
		t.Fatal(r)
	}
	path := "/t/exporty/api/v1/reports/exports/" + r.JSON["id"].(string)
	var file apitest.Resp
	apitest.Eventually(t, 30*time.Second, "the export", func() bool {
		file = s.Call(t, "GET", path, owner, nil)
		return strings.HasPrefix(file.Header.Get("Content-Type"), "text/csv")
	})
	rows, err := csv.NewReader(strings.NewReader(string(file.Body))).ReadAll()
	if err != nil {
		t.Fatalf("export is not valid CSV: %v\n%s", err, file.Body)
	}
	if strings.Join(rows[0], ",") != "number,title,status,priority,assignee,requester,created_at,resolved_at,first_response_s,resolution_s" {
		t.Fatalf("header: %v", rows[0])
	}
	wantTitles := []string{`Plain`, `Comma, "quotes" and` + "\nnewline", `'=HYPERLINK("http://evil.test","click")`, `'+1 call me`, `'@SUM(A1)`}
	if len(rows) != 1+len(wantTitles) {
		t.Fatalf("export has %d rows, want %d (the tenant's live tickets):\n%s", len(rows)-1, len(wantTitles), file.Body)
	}
	for i, want := range wantTitles {
		if rows[i+1][0] != fmt.Sprint(i+1) || rows[i+1][1] != want || rows[i+1][4] != agent.Email || rows[i+1][2] != "open" {
			t.Errorf("row %d: %q", i+1, rows[i+1])
		}
	}
	audit := s.Call(t, "GET", "/t/exporty/api/v1/audit", owner, nil).Items()
	if len(audit) == 0 || audit[0]["action"] != "report.exported" {
		t.Errorf("export not audited: %v", audit)
	}
}
