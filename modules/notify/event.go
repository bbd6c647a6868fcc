package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/patchdesk/patchdesk/modules/events"
)

// ticketEvent is a ticket event as notify reads it: the envelope, its
// decoded ticket change, and the bytes exactly as published (what webhooks
// receive).
type ticketEvent struct {
	*events.Envelope
	Data *events.TicketChange
	raw  json.RawMessage
}

// decodeTicketEvent reads a ticket event; ok is false for other event families.
func decodeTicketEvent(b []byte) (ev *ticketEvent, ok bool, err error) {
	env, err := events.Decode(b)
	if err != nil {
		return nil, false, err
	}
	if !events.IsTicket(env.Type) {
		return nil, false, nil
	}
	data, err := env.TicketChange()
	if err != nil {
		return nil, false, err
	}
	return &ticketEvent{Envelope: env, Data: data, raw: b}, true, nil
}

func (e *ticketEvent) actor() uuid.UUID { return e.Actor() }

func (e *ticketEvent) internal() bool { return e.Data.Internal() }

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
