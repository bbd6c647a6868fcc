// Package tickets is the heart of PatchDesk: tickets with their state
// machine, comments, and the append-only timeline. Every change is one
// transaction that updates the ticket, appends its events, audits privileged
// actions and enqueues the outbox events, or does nothing at all.
package tickets

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/patchdesk/patchdesk/modules/events"
)

// Statuses.
const (
	StatusOpen       = events.StatusOpen
	StatusInProgress = events.StatusInProgress
	StatusPending    = events.StatusPending
	StatusResolved   = events.StatusResolved
	StatusClosed     = events.StatusClosed
)

// Statuses lists every ticket status.
var Statuses = []string{StatusOpen, StatusInProgress, StatusPending, StatusResolved, StatusClosed}

// Priorities lists every ticket priority.
var Priorities = []string{"low", "normal", "high", "urgent"}

// DefaultPriority is what a ticket gets when its creator does not (or, as a
// customer, may not) choose one.
const DefaultPriority = "normal"

// Event types of the timeline.
const (
	EventCreated         = events.Created
	EventStatusChanged   = events.StatusChanged
	EventAssigned        = events.Assigned
	EventPriorityChanged = events.PriorityChanged
	EventCommented       = events.Commented
	EventTagsChanged     = events.TagsChanged
	EventTitleChanged    = events.TitleChanged
	EventDeleted         = events.Deleted
)

// Ticket is the current state of a ticket. RequesterEmail is in canonical
// form (package address): compare it with ==.
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

	ClosedAt  *time.Time `json:"-"`
	DeletedAt *time.Time `json:"-"`
}

// snapshot is the ticket as events carry it.
func (t *Ticket) snapshot() events.Ticket {
	return events.Ticket{ID: t.ID, Number: t.Number, Title: t.Title, Body: t.Body, Status: t.Status, Priority: t.Priority,
		AssigneeID: t.AssigneeID, RequesterEmail: t.RequesterEmail, Tags: t.Tags, CreatedAt: t.CreatedAt,
		UpdatedAt: t.UpdatedAt, Version: t.Version}
}

// clone returns a deep copy, so a change can compare before and after.
func (t Ticket) clone() Ticket {
	t.Tags = slices.Clone(t.Tags)
	return t
}

// Comment is a public reply or an internal note.
type Comment struct {
	ID        uuid.UUID `json:"id"`
	Body      string    `json:"body"`
	Internal  bool      `json:"internal"`
	AuthorID  uuid.UUID `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
	// Attachments are the files the comment claimed (never nil in JSON).
	Attachments []Attachment `json:"attachments"`
}

// Attachment is a file as a comment lists it (package attachments owns it).
type Attachment struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	SHA256      string    `json:"sha256"`
}

// event is the comment as events carry it (nil for none).
func (c *Comment) event() *events.Comment {
	if c == nil {
		return nil
	}
	return &events.Comment{ID: c.ID, Body: c.Body, Internal: c.Internal, AuthorID: c.AuthorID, CreatedAt: c.CreatedAt}
}

// Event is one timeline entry.
type Event struct {
	ID        int64          `json:"id"`
	Type      string         `json:"type"`
	ActorID   *uuid.UUID     `json:"actor_id"`
	Data      map[string]any `json:"data"`
	CreatedAt time.Time      `json:"created_at"`
}

// timeline is the entry as events carry it.
func (e *Event) timeline() events.Timeline {
	return events.Timeline{ID: e.ID, Type: e.Type, ActorID: e.ActorID, Data: e.Data, CreatedAt: e.CreatedAt}
}

// optionalID is a JSON field that distinguishes absent from null.
type optionalID struct {
	Set bool
	ID  *uuid.UUID
}

func (o *optionalID) UnmarshalJSON(b []byte) error {
	o.Set = true
	return json.Unmarshal(b, &o.ID)
}
