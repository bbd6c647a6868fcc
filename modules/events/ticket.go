package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Ticket statuses, as events and the API carry them.
const (
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusPending    = "pending"
	StatusResolved   = "resolved"
	StatusClosed     = "closed"
)

// Timeline entry types: a ticket event's Type is "ticket." followed by one of these.
const (
	Created         = "created"
	StatusChanged   = "status_changed"
	Assigned        = "assigned"
	PriorityChanged = "priority_changed"
	Commented       = "commented"
	TagsChanged     = "tags_changed"
	TitleChanged    = "title_changed"
	Deleted         = "deleted"
)

// TicketPrefix starts the type of every ticket event ("ticket.created").
const TicketPrefix = "ticket."

// TicketType is the envelope type of a ticket event with the given timeline type.
func TicketType(timelineType string) string { return TicketPrefix + timelineType }

// IsTicket reports whether an envelope type is a ticket event.
func IsTicket(typ string) bool { return strings.HasPrefix(typ, TicketPrefix) }

// TicketChange is the data of every ticket event: the timeline entry, the
// ticket after it, the comment it added (commented only) and the ticket's
// watchers (its creator and everyone who commented), so consumers need not
// read the tickets module's tables.
type TicketChange struct {
	Ticket   Ticket      `json:"ticket"`
	Event    Timeline    `json:"event"`
	Comment  *Comment    `json:"comment,omitempty"`
	Watchers []uuid.UUID `json:"watchers"`
}

// Ticket is a ticket's state after the change, as the API shows it.
type Ticket struct {
	ID             uuid.UUID  `json:"id"`
	Number         int64      `json:"number"`
	Title          string     `json:"title"`
	Body           string     `json:"body"`
	Status         string     `json:"status"`
	Priority       string     `json:"priority"`
	AssigneeID     *uuid.UUID `json:"assignee_id"`
	RequesterEmail *string    `json:"requester_email"`
	Tags           []string   `json:"tags"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Version        int        `json:"version"`
}

// Timeline is the timeline entry an event records. Data holds, for field
// changes, {"before": …, "after": …}; for created, the initial fields
// (title, status, priority, assignee_id, requester_email, tags); for
// commented, comment_id and internal; for deleted, nothing.
type Timeline struct {
	ID        int64          `json:"id"`
	Type      string         `json:"type"`
	ActorID   *uuid.UUID     `json:"actor_id"`
	Data      map[string]any `json:"data"`
	CreatedAt time.Time      `json:"created_at"`
}

// Comment is a public reply or an internal note.
type Comment struct {
	ID        uuid.UUID `json:"id"`
	Body      string    `json:"body"`
	Internal  bool      `json:"internal"`
	AuthorID  uuid.UUID `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
}

// TicketChange decodes the data of a ticket event.
func (e *Envelope) TicketChange() (*TicketChange, error) {
	if !IsTicket(e.Type) {
		return nil, fmt.Errorf("%w: %s is not a ticket event", ErrMalformed, e.Type)
	}
	var c TicketChange
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return nil, fmt.Errorf("%w: ticket event %s: %w", ErrMalformed, e.ID, err)
	}
	return &c, nil
}

// Internal reports whether the change is an internal note, which customers
// must never see or be told about.
func (c *TicketChange) Internal() bool { return c.Comment != nil && c.Comment.Internal }

// String returns a timeline value as a string ("" when absent or not a string).
func (t Timeline) String(key string) string {
	s, _ := t.Data[key].(string)
	return s
}

// TicketText is a live ticket with the text of its comments, for rebuilding
// a read model (search) from the source tables.
type TicketText struct {
	Ticket       Ticket
	PublicText   string
	InternalText string
}

// Replayed is one stored timeline entry with its ticket's identity, for
// rebuilding a read model (reports) from the source tables.
type Replayed struct {
	EventID      uuid.UUID
	TicketID     uuid.UUID
	TicketNumber int64
	Type         string
	ActorID      *uuid.UUID
	Data         map[string]any
	At           time.Time
}
