package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
)

var update = flag.Bool("update", false, "rewrite the golden files (only for an intended format change)")

var (
	tenantID = uuid.MustParse("6f1c2a8e-0d4b-4e0b-9a57-3d2f8e1b7c10")
	ticketID = uuid.MustParse("0b8f3c52-6a1e-4f7d-8c2b-91e4d5a6b7c8")
	actorID  = uuid.MustParse("a4e9d2c1-3b5f-4a6e-8d7c-2f1e0b9a8c7d")
	eventID  = uuid.MustParse("e1d2c3b4-a5f6-4789-8abc-def012345678")
	at       = time.Date(2026, 11, 29, 9, 30, 0, 0, time.UTC)
)

// goldenCases are the events whose wire format is fixed: a change to any of
// them is a change of the contract consumers and webhook receivers rely on.
func goldenCases(t *testing.T) []struct {
	name string
	env  events.Envelope
} {
	email := "customer@example.com"
	mk := func(timelineType string, change events.TicketChange) events.Envelope {
		env, err := events.New(eventID, events.TicketType(timelineType), &ticketID, &actorID, at, change)
		if err != nil {
			t.Fatal(err)
		}
		env.TenantID = tenantID
		return env
	}
	ticket := events.Ticket{ID: ticketID, Number: 42, Title: "Printer on fire", Body: "It smokes.", Status: events.StatusOpen,
		Priority: "high", RequesterEmail: &email, Tags: []string{"hardware"}, CreatedAt: at, UpdatedAt: at, Version: 1}
	commented := ticket
	commented.Version = 2
	return []struct {
		name string
		env  events.Envelope
	}{
		{"ticket.created.v1", mk(events.Created, events.TicketChange{
			Ticket: ticket,
			Event: events.Timeline{ID: 7, Type: events.Created, ActorID: &actorID, CreatedAt: at, Data: map[string]any{
				"title": "Printer on fire", "status": "open", "priority": "high", "assignee_id": nil,
				"requester_email": email, "tags": []any{"hardware"}}},
			Watchers: []uuid.UUID{actorID},
		})},
		{"ticket.commented.v1", mk(events.Commented, events.TicketChange{
			Ticket:   commented,
			Event:    events.Timeline{ID: 8, Type: events.Commented, ActorID: &actorID, CreatedAt: at, Data: map[string]any{"comment_id": eventID.String(), "internal": false}},
			Comment:  &events.Comment{ID: eventID, Body: "Unplug it first.", AuthorID: actorID, CreatedAt: at},
			Watchers: []uuid.UUID{actorID},
		})},
		{"ticket.status_changed.v1", mk(events.StatusChanged, events.TicketChange{
			Ticket:   commented,
			Event:    events.Timeline{ID: 9, Type: events.StatusChanged, ActorID: &actorID, CreatedAt: at, Data: map[string]any{"before": "open", "after": "pending"}},
			Watchers: []uuid.UUID{actorID},
		})},
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := json.MarshalIndent(tc.env, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
				t.Fatalf("the wire format of %s changed (docs/events.md and every consumer depend on it):\ngot:\n%s\nwant:\n%s", tc.name, got, want)
			}
			// The golden bytes read back into the same event.
			env, err := events.Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			change, err := env.TicketChange()
			if err != nil {
				t.Fatal(err)
			}
			wantChange, err := tc.env.TicketChange()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(change, wantChange) {
				t.Fatalf("decoded change differs:\n%+v\n%+v", change, wantChange)
			}
			if env.Version != events.Version || env.ID != eventID || env.TenantID != tenantID || env.Actor() != actorID {
				t.Fatalf("decoded envelope: %+v", env)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		version int
		bad     bool
	}{
		{name: "legacy event without version reads as 1", version: 1,
			body: `{"event_id":"` + eventID.String() + `","type":"ticket.created","tenant_id":"` + tenantID.String() + `","occurred_at":"2026-11-29T09:30:00Z","data":{}}`},
		{name: "current version", version: events.Version,
			body: `{"event_id":"` + eventID.String() + `","type":"ticket.created","version":1,"tenant_id":"` + tenantID.String() + `","occurred_at":"2026-11-29T09:30:00Z","data":{}}`},
		{name: "newer version is refused", bad: true,
			body: `{"event_id":"` + eventID.String() + `","type":"ticket.created","version":2,"tenant_id":"` + tenantID.String() + `","data":{}}`},
		{name: "missing id", bad: true, body: `{"type":"ticket.created","tenant_id":"` + tenantID.String() + `","data":{}}`},
		{name: "missing tenant", bad: true, body: `{"event_id":"` + eventID.String() + `","type":"ticket.created","data":{}}`},
		{name: "missing type", bad: true, body: `{"event_id":"` + eventID.String() + `","tenant_id":"` + tenantID.String() + `","data":{}}`},
		{name: "not JSON", bad: true, body: `{"event_id":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, err := events.Decode([]byte(tc.body))
			if tc.bad {
				if !errors.Is(err, events.ErrMalformed) {
					t.Fatalf("want ErrMalformed, got %v", err)
				}
				return
			}
			if err != nil || env.Version != tc.version {
				t.Fatalf("decode: %+v %v", env, err)
			}
		})
	}
}

func TestTicketChangeRefusesOtherFamiliesAndBadData(t *testing.T) {
	t.Parallel()
	other := events.Envelope{ID: eventID, Type: "tenant.moved", TenantID: tenantID, Data: json.RawMessage(`{}`)}
	if _, err := other.TicketChange(); !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("non-ticket event decoded as a ticket change: %v", err)
	}
	bad := events.Envelope{ID: eventID, Type: "ticket.created", TenantID: tenantID, Data: json.RawMessage(`{"ticket":{"number":"x"}}`)}
	if _, err := bad.TicketChange(); !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("bad data decoded: %v", err)
	}
}
