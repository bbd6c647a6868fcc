// Package events is the one versioned contract of the events PatchDesk
// publishes: the envelope every Kafka message (and every webhook body)
// carries, and the payload types of each event family. Producers build
// events only with this package and consumers read them only through it, so
// a change of the format is a change here, caught by its golden tests and
// described in docs/events.md.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Version is the version of the envelope and payloads this binary writes.
// Additive changes (a new field, a new event type) keep the version; a
// change that removes or redefines a field raises it.
const Version = 1

// ErrMalformed marks an event that cannot be read: retrying cannot help.
var ErrMalformed = errors.New("malformed event")

// Envelope is the outer shape of every event. ID is the idempotency key:
// delivery is at-least-once, so consumers deduplicate on it.
type Envelope struct {
	ID         uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Version    int             `json:"version"`
	TenantID   uuid.UUID       `json:"tenant_id"`
	TicketID   *uuid.UUID      `json:"ticket_id,omitempty"`
	ActorID    *uuid.UUID      `json:"actor_id,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// New builds an envelope of the current version around data. The tenant is
// filled in by the outbox, from the transaction's tenant.
func New(id uuid.UUID, typ string, ticketID, actorID *uuid.UUID, at time.Time, data any) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return Envelope{ID: id, Type: typ, Version: Version, TicketID: ticketID, ActorID: actorID, OccurredAt: at.UTC(), Data: raw}, nil
}

// Decode reads an event, refusing one without id, tenant or type, or of a
// version this binary does not know. Events written before the version field
// existed read as version 1.
func Decode(b []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if e.ID == uuid.Nil || e.TenantID == uuid.Nil || e.Type == "" {
		return nil, fmt.Errorf("%w: missing id, tenant or type", ErrMalformed)
	}
	if e.Version == 0 {
		e.Version = 1
	}
	if e.Version > Version {
		return nil, fmt.Errorf("%w: version %d is newer than this binary's %d", ErrMalformed, e.Version, Version)
	}
	return &e, nil
}

// Actor returns the actor's id, or uuid.Nil for events without one (system).
func (e *Envelope) Actor() uuid.UUID {
	if e.ActorID == nil {
		return uuid.Nil
	}
	return *e.ActorID
}

// TenantBatch is the ticket events of one tenant in a consumer's batch, in
// the order they were read (a ticket's events stay in order: they share a
// partition).
type TenantBatch struct {
	TenantID uuid.UUID
	Events   []*Envelope
	Changes  []*TicketChange
}

// GroupTicketEvents decodes a batch of published events and groups its
// ticket events by tenant, in order of first appearance; other event
// families are left out. A message that does not decode fails the whole
// batch, so that the consumer handles it alone (and dead-letters it).
func GroupTicketEvents(values [][]byte) ([]*TenantBatch, error) {
	var out []*TenantBatch
	byTenant := map[uuid.UUID]*TenantBatch{}
	for _, v := range values {
		ev, err := Decode(v)
		if err != nil {
			return nil, err
		}
		if !IsTicket(ev.Type) {
			continue
		}
		data, err := ev.TicketChange()
		if err != nil {
			return nil, err
		}
		b := byTenant[ev.TenantID]
		if b == nil {
			b = &TenantBatch{TenantID: ev.TenantID}
			byTenant[ev.TenantID] = b
			out = append(out, b)
		}
		b.Events = append(b.Events, ev)
		b.Changes = append(b.Changes, data)
	}
	return out, nil
}

// IDs lists the batch's event ids, for marking them processed at once.
func (b *TenantBatch) IDs() []uuid.UUID {
	ids := make([]uuid.UUID, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.ID
	}
	return ids
}
