package sla_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/sla"
)

var priorities = []string{"low", "normal", "high", "urgent"}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	valid := testPolicy()
	if err := valid.Validate(priorities); err != nil {
		t.Fatalf("the test policy is valid: %v", err)
	}
	tests := []struct {
		name   string
		change func(p *sla.Policy)
		want   string
	}{
		{"no name", func(p *sla.Policy) { p.Name = "  " }, "name is required"},
		{"long name", func(p *sla.Policy) { p.Name = strings.Repeat("x", 201) }, "name: at most 200"},
		{"negative position", func(p *sla.Policy) { p.Position = -1 }, "position"},
		{"no targets", func(p *sla.Policy) { p.Targets = nil }, "targets: at least one priority"},
		{"unknown target priority", func(p *sla.Policy) { p.Targets["critical"] = sla.Targets{Resolution: 10} }, `targets: unknown priority "critical"`},
		{"empty targets of a priority", func(p *sla.Policy) { p.Targets["normal"] = sla.Targets{} }, "targets.normal: no target set"},
		{"negative target", func(p *sla.Policy) { p.Targets["normal"] = sla.Targets{FirstResponse: -5} }, "targets.normal.first_response: minutes between 1 and 525600"},
		{"target beyond a year", func(p *sla.Policy) { p.Targets["normal"] = sla.Targets{Resolution: 525601} }, "targets.normal.resolution"},
		{"unknown condition priority", func(p *sla.Policy) { p.Conditions.Priority = []string{"high", "hgih"} }, `conditions.priority[1]: unknown priority "hgih"`},
		{"empty tag", func(p *sla.Policy) { p.Conditions.Tags = []string{"vip", ""} }, "conditions.tags[1]: empty tag"},
		{"negative warning", func(p *sla.Policy) { p.WarnBefore = -1 }, "warn_before"},
		{"percent 100", func(p *sla.Policy) { p.WarnBefore, p.WarnAtPercent = 0, 100 }, "warn_at_percent: between 1 and 99"},
		{"both warnings", func(p *sla.Policy) { p.WarnAtPercent = 80 }, "set warn_before or warn_at_percent, not both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testPolicy()
			tc.change(&p)
			err := p.Validate(priorities)
			if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an ErrInvalid problem containing %q", err, tc.want)
			}
		})
	}
	// Without a priority list any non-empty priority passes.
	p := testPolicy()
	p.Targets["critical"] = sla.Targets{Resolution: 10}
	if err := p.Validate(nil); err != nil {
		t.Fatalf("Validate(nil): %v", err)
	}
}

func TestPolicyJSON(t *testing.T) {
	t.Parallel()
	var p sla.Policy
	body := `{"name":"VIP","position":1,"conditions":{"tags":["vip"]},"targets":{"urgent":{"first_response":15,"resolution":240}},"warn_before":10}`
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if !p.PauseWhenPending {
		t.Fatal("pause_when_pending defaults to true")
	}
	if p.Target("urgent", sla.FirstResponse) != 15*time.Minute || p.Target("urgent", sla.NextResponse) != 0 || p.Target("low", sla.Resolution) != 0 {
		t.Fatalf("targets = %+v", p.Targets)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","pause_when_pending":false}`), &p); err != nil || p.PauseWhenPending {
		t.Fatalf("explicit false: %v %v", err, p.PauseWhenPending)
	}
	if err := json.Unmarshal([]byte(`{"name":1}`), &p); err == nil {
		t.Fatal("a malformed policy decodes")
	}
	// What the integration stores reads back the same.
	orig := testPolicy()
	group := uuid.MustParse("0b8f3c52-6a1e-4f7d-8c2b-91e4d5a6b7c8")
	orig.Conditions = sla.Conditions{Priority: []string{"high"}, Tags: []string{"vip"}, GroupID: &group}
	orig.CalendarID = &group
	orig.PauseWhenPending = false
	b, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	var back sla.Policy
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, orig) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, orig)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	group, other := uuid.MustParse("0b8f3c52-6a1e-4f7d-8c2b-91e4d5a6b7c8"), uuid.New()
	policies := []sla.Policy{
		{Name: "catch-all", Position: 9},
		{Name: "vip urgent", Position: 1, Conditions: sla.Conditions{Priority: []string{"urgent", "high"}, Tags: []string{"vip", "gold"}}},
		{Name: "billing group", Position: 2, Conditions: sla.Conditions{GroupID: &group}},
		{Name: "vip", Position: 2, Conditions: sla.Conditions{Tags: []string{"vip"}}},
		{Name: "vip too (same position, later)", Position: 2, Conditions: sla.Conditions{Tags: []string{"vip"}}},
	}
	tests := []struct {
		name   string
		ticket sla.Ticket
		want   string
	}{
		{"nothing special", sla.Ticket{Priority: "low"}, "catch-all"},
		{"urgent vip", sla.Ticket{Priority: "urgent", Tags: []string{"x", "vip"}}, "vip urgent"},
		{"high gold", sla.Ticket{Priority: "high", Tags: []string{"gold"}}, "vip urgent"},
		{"low vip: lowest position, then slice order", sla.Ticket{Priority: "low", Tags: []string{"vip"}}, "vip"},
		{"group", sla.Ticket{Priority: "low", GroupID: &group}, "billing group"},
		{"another group", sla.Ticket{Priority: "low", GroupID: &other}, "catch-all"},
	}
	for _, tc := range tests {
		if got := sla.Match(policies, tc.ticket); got == nil || got.Name != tc.want {
			t.Errorf("%s: Match = %v, want %s", tc.name, got, tc.want)
		}
	}
	if got := sla.Match(policies[1:3], sla.Ticket{Priority: "low"}); got != nil {
		t.Errorf("no policy applies, got %s", got.Name)
	}
	if got := sla.Match(nil, sla.Ticket{}); got != nil {
		t.Error("Match(nil) should be nil")
	}
}

// TestAdapters reads the golden events of the event contract.
func TestAdapters(t *testing.T) {
	t.Parallel()
	staff := uuid.MustParse("a4e9d2c1-3b5f-4a6e-8d7c-2f1e0b9a8c7d")
	kindOf := func(id uuid.UUID) sla.ActorKind {
		if id == staff {
			return sla.ActorStaff
		}
		return sla.ActorCustomer
	}
	tests := []struct {
		file string
		want sla.Entry
	}{
		{"ticket.commented.v1.json", sla.Entry{Type: events.Commented, Actor: sla.ActorStaff}},
		{"ticket.created.v1.json", sla.Entry{Type: events.Created, Actor: sla.ActorStaff, Status: "open", Priority: "high"}},
		{"ticket.status_changed.v1.json", sla.Entry{Type: events.StatusChanged, Actor: sla.ActorStaff, Before: "open", After: "pending"}},
	}
	for _, tc := range tests {
		raw := readGolden(t, tc.file)
		env, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := env.TicketChange()
		if err != nil {
			t.Fatal(err)
		}
		got := sla.FromChange(ch, kindOf)
		want := tc.want
		want.At = ch.Event.CreatedAt
		if want.At.IsZero() || got != want {
			t.Errorf("%s: FromChange = %+v, want %+v", tc.file, got, want)
		}
		// The stored timeline, replayed from the source tables, reads the same.
		rep := events.Replayed{Type: ch.Event.Type, ActorID: ch.Event.ActorID, Data: ch.Event.Data, At: ch.Event.CreatedAt}
		if got := sla.FromReplayed(rep, kindOf); got != want {
			t.Errorf("%s: FromReplayed = %+v, want %+v", tc.file, got, want)
		}
		customer := uuid.New()
		rep.ActorID = &customer
		if got := sla.FromReplayed(rep, kindOf); got.Actor != sla.ActorCustomer {
			t.Errorf("%s: a customer's entry reads as %s", tc.file, got.Actor)
		}
	}
	note := events.Timeline{Type: "ticket.commented", ActorID: &staff, Data: map[string]any{"internal": true}}
	if e := sla.FromTimeline(note, kindOf); !e.Internal || e.Type != events.Commented || e.Actor != sla.ActorStaff {
		t.Errorf("internal note = %+v", e)
	}
	if e := sla.FromTimeline(events.Timeline{Type: events.Assigned}, kindOf); e.Actor != sla.ActorSystem {
		t.Errorf("no actor = %+v", e)
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "events", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
