package tickets

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// change is a modification of one ticket inside a transaction. Callers edit
// After (a copy of Before) and add events that are not field changes
// (comments); commit derives the field events from Before → After, so a
// ticket cannot change without its timeline saying so.
type change struct {
	Before Ticket
	After  Ticket
	Actor  uuid.UUID
	// Extra are events that are not a field difference (commented).
	Extra []pendingEvent
	// Audit lists privileged actions to record with the change.
	Audit []auditEntry
	// Comment, when set, travels in the outbox payload for consumers.
	Comment *Comment
	// outboxWritten is how many outbox events commit wrote, for the caller
	// to count once the transaction has committed.
	outboxWritten int
}

type pendingEvent struct {
	Type string
	Data map[string]any
}

type auditEntry struct {
	Action string
	Data   map[string]any
}

func newChange(t *Ticket, actor uuid.UUID) *change {
	return &change{Before: t.clone(), After: t.clone(), Actor: actor}
}

// fieldEvents lists the events implied by the difference between two states.
func fieldEvents(before, after Ticket) []pendingEvent {
	var out []pendingEvent
	diff := func(typ string, b, a any) {
		out = append(out, pendingEvent{Type: typ, Data: map[string]any{"before": b, "after": a}})
	}
	if before.Title != after.Title {
		diff(EventTitleChanged, before.Title, after.Title)
	}
	if before.Status != after.Status {
		diff(EventStatusChanged, before.Status, after.Status)
	}
	if before.Priority != after.Priority {
		diff(EventPriorityChanged, before.Priority, after.Priority)
	}
	if !equalIDs(before.AssigneeID, after.AssigneeID) {
		diff(EventAssigned, before.AssigneeID, after.AssigneeID)
	}
	if !slices.Equal(before.Tags, after.Tags) {
		diff(EventTagsChanged, before.Tags, after.Tags)
	}
	if before.DeletedAt == nil && after.DeletedAt != nil {
		out = append(out, pendingEvent{Type: EventDeleted, Data: map[string]any{}})
	}
	return out
}

func equalIDs(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// commit writes the change: new ticket state (guarded by version), timeline
// events, audit entries and outbox events, all in tx. A change with no
// events writes nothing and returns the ticket unchanged.
func (s *Service) commit(ctx context.Context, tx tenancy.Tx, ch *change) (*Ticket, error) {
	pending := append(fieldEvents(ch.Before, ch.After), ch.Extra...)
	if len(pending) == 0 {
		return &ch.Before, nil
	}
	after := ch.After
	if after.Status != ch.Before.Status {
		after.ClosedAt = nil
		if after.Status == StatusClosed {
			now := time.Now()
			after.ClosedAt = &now
		}
	}
	t, err := updateTicket(ctx, tx, after)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, tx, t, ch.Actor, pending, ch.Comment, nil); err != nil {
		return nil, err
	}
	ch.outboxWritten = len(pending)
	for _, a := range ch.Audit {
		if err := audit.Record(ctx, tx, ch.Actor, a.Action, fmt.Sprintf("ticket:%d", t.Number), a.Data); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// record appends events to the timeline and the outbox. watchers, when
// known to the caller (a ticket just created has only its creator), spare
// the query for them.
func (s *Service) record(ctx context.Context, tx tenancy.Tx, t *Ticket, actor uuid.UUID, pending []pendingEvent, comment *Comment, watchers []uuid.UUID) error {
	var actorID *uuid.UUID
	if actor != uuid.Nil {
		actorID = &actor
	}
	if watchers == nil {
		var err error
		if watchers, err = watchersOf(ctx, tx, t.ID); err != nil {
			return err
		}
	}
	// Every statement of the transaction sees the same now(): the
	// timeline rows' created_at is the ticket's updated_at, known already.
	// Only the timeline ids are the database's; appendEvents writes them
	// into the outbox payloads as it inserts both, in one statement.
	at := t.UpdatedAt
	out := make([]events.Envelope, 0, len(pending))
	rows := make([]timelineRow, 0, len(pending))
	for _, pe := range pending {
		id := uuid.New()
		e := Event{Type: pe.Type, ActorID: actorID, Data: pe.Data, CreatedAt: at}
		env, err := events.New(id, events.TicketType(pe.Type), &t.ID, actorID, at, events.TicketChange{
			Ticket: t.snapshot(), Event: e.timeline(), Comment: comment.event(), Watchers: watchers,
		})
		if err != nil {
			return err
		}
		out = append(out, env)
		rows = append(rows, timelineRow{eventID: id, typ: pe.Type, data: pe.Data})
	}
	return appendEvents(ctx, tx, t.ID, actorID, rows, out)
}
