package events_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
)

// A consumer reads a message from the events topic: decode the envelope,
// skip families it does not handle, then read the ticket change.
func Example() {
	msg := []byte(`{"event_id":"e1d2c3b4-a5f6-4789-8abc-def012345678","type":"ticket.status_changed","version":1,
		"tenant_id":"6f1c2a8e-0d4b-4e0b-9a57-3d2f8e1b7c10","occurred_at":"2026-11-29T09:30:00Z",
		"data":{"ticket":{"number":42,"status":"pending"},"event":{"type":"status_changed","data":{"before":"open","after":"pending"}},"watchers":[]}}`)
	env, err := events.Decode(msg)
	if err != nil || !events.IsTicket(env.Type) {
		return
	}
	change, err := env.TicketChange()
	if err != nil {
		return
	}
	fmt.Println(env.Type, change.Ticket.Number, change.Event.String("before"), "→", change.Event.String("after"))
	// Output: ticket.status_changed 42 open → pending
}

// A producer builds an event of the current version; the outbox fills in
// the tenant from its transaction.
func ExampleNew() {
	id := uuid.MustParse("e1d2c3b4-a5f6-4789-8abc-def012345678")
	env, err := events.New(id, events.TicketType(events.Created), nil, nil, time.Date(2026, 11, 29, 9, 30, 0, 0, time.UTC),
		events.TicketChange{Ticket: events.Ticket{Number: 1, Title: "Hello"}})
	if err != nil {
		return
	}
	fmt.Println(env.Type, env.Version)
	// Output: ticket.created 1
}
