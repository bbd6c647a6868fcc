package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/outbox"
)

// ticketEvent is the outbox event as the tickets module publishes it.
type ticketEvent struct {
	ID         uuid.UUID  `json:"event_id"`
	Type       string     `json:"type"`
	TenantID   uuid.UUID  `json:"tenant_id"`
	ActorID    *uuid.UUID `json:"actor_id"`
	OccurredAt time.Time  `json:"occurred_at"`
	Data       struct {
		Ticket struct {
			ID             uuid.UUID  `json:"id"`
			Number         int64      `json:"number"`
			Title          string     `json:"title"`
			Status         string     `json:"status"`
			AssigneeID     *uuid.UUID `json:"assignee_id"`
			RequesterEmail *string    `json:"requester_email"`
		} `json:"ticket"`
		Event struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		} `json:"event"`
		Comment *struct {
			ID       uuid.UUID `json:"id"`
			Body     string    `json:"body"`
			Internal bool      `json:"internal"`
			AuthorID uuid.UUID `json:"author_id"`
		} `json:"comment"`
		Watchers []uuid.UUID `json:"watchers"`
	} `json:"data"`
	// raw is the event exactly as published: what webhooks receive.
	raw json.RawMessage
}

func decodeEvent(b []byte) (*ticketEvent, error) {
	if _, err := outbox.Decode(b); err != nil {
		return nil, err
	}
	var e ticketEvent
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	e.raw = b
	return &e, nil
}

func (e *ticketEvent) actor() uuid.UUID {
	if e.ActorID == nil {
		return uuid.Nil
	}
	return *e.ActorID
}

func (e *ticketEvent) internal() bool { return e.Data.Comment != nil && e.Data.Comment.Internal }

// summary is the one-line text of an in-app notification.
func (e *ticketEvent) summary() string {
	d := e.Data.Event.Data
	switch e.Data.Event.Type {
	case "created":
		return "New ticket"
	case "status_changed":
		return fmt.Sprintf("Status changed from %v to %v", d["before"], d["after"])
	case "assigned":
		if d["after"] == nil {
			return "Unassigned"
		}
		return "Assigned"
	case "priority_changed":
		return fmt.Sprintf("Priority changed from %v to %v", d["before"], d["after"])
	case "commented":
		kind := "New reply"
		if e.internal() {
			kind = "New internal note"
		}
		return kind + ": " + excerpt(e.Data.Comment.Body, 140)
	case "tags_changed":
		return "Tags changed"
	case "title_changed":
		return "Title changed"
	case "deleted":
		return "Ticket deleted"
	}
	return e.Type
}

// excerpt shortens s to at most n runes on one line.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
