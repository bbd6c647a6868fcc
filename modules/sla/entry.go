package sla

import (
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
)

// KindOf tells staff from customers by member id. The integration answers
// from the members' roles (customer → ActorCustomer, any other role →
// ActorStaff) and returns ActorSystem for an id it cannot place.
type KindOf func(memberID uuid.UUID) ActorKind

// FromTimeline reads a timeline entry as the tickets module stores and
// publishes it (events.TicketChange.Event). Entries without an actor are
// ActorSystem.
func FromTimeline(t events.Timeline, kindOf KindOf) Entry {
	return entryOf(t.Type, t.CreatedAt, t.ActorID, t.Data, kindOf)
}

// FromReplayed reads a stored timeline entry replayed from the source
// tables (events.Replayed), for rebuilding state in bulk.
func FromReplayed(r events.Replayed, kindOf KindOf) Entry {
	return entryOf(r.Type, r.At, r.ActorID, r.Data, kindOf)
}

// FromChange reads the timeline entry of a ticket event from Kafka; the
// comment, when present, decides Internal.
func FromChange(c *events.TicketChange, kindOf KindOf) Entry {
	e := FromTimeline(c.Event, kindOf)
	if c.Comment != nil {
		e.Internal = c.Comment.Internal
	}
	return e
}

func entryOf(typ string, at time.Time, actor *uuid.UUID, data map[string]any, kindOf KindOf) Entry {
	e := Entry{Type: strings.TrimPrefix(typ, events.TicketPrefix), At: at, Actor: ActorSystem}
	if actor != nil && *actor != uuid.Nil && kindOf != nil {
		e.Actor = kindOf(*actor)
	}
	str := func(key string) string {
		s, _ := data[key].(string)
		return s
	}
	switch e.Type {
	case events.Created:
		e.Status, e.Priority = str("status"), str("priority")
	case events.StatusChanged, events.PriorityChanged:
		e.Before, e.After = str("before"), str("after")
	case events.Commented:
		e.Internal, _ = data["internal"].(bool)
	}
	return e
}
