package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

const ticketColumns = `id, number, title, body, status, priority, assignee_id, requester_email, tags,
	created_at, updated_at, version, closed_at, deleted_at`

func scanTicket(row pgx.Row) (*Ticket, error) {
	var t Ticket
	err := row.Scan(&t.ID, &t.Number, &t.Title, &t.Body, &t.Status, &t.Priority, &t.AssigneeID, &t.RequesterEmail, &t.Tags,
		&t.CreatedAt, &t.UpdatedAt, &t.Version, &t.ClosedAt, &t.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errTicketNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan ticket: %w", err)
	}
	return &t, nil
}

var errTicketNotFound = errs.Errorf(errs.ErrNotFound, "ticket not found")

// getTicket loads a live ticket by number, locking it when forUpdate.
func getTicket(ctx context.Context, tx tenancy.Tx, number int64, forUpdate bool) (*Ticket, error) {
	q := `SELECT ` + ticketColumns + ` FROM tickets WHERE number = $1 AND deleted_at IS NULL`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return scanTicket(tx.QueryRow(ctx, q, number))
}

// nextNumber takes the next gap-free ticket number; the counter row stays
// locked until the transaction ends, so numbers follow commit order.
func nextNumber(ctx context.Context, tx tenancy.Tx) (int64, error) {
	var n int64
	if err := tx.QueryRow(ctx, `UPDATE ticket_counter SET last_number = last_number + 1 RETURNING last_number`).Scan(&n); err != nil {
		return 0, fmt.Errorf("next ticket number: %w", err)
	}
	return n, nil
}

func insertTicket(ctx context.Context, tx tenancy.Tx, t *Ticket, createdBy uuid.UUID) (*Ticket, error) {
	return scanTicket(tx.QueryRow(ctx, `INSERT INTO tickets (number, title, body, status, priority, assignee_id, requester_email, tags, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+ticketColumns,
		t.Number, t.Title, t.Body, t.Status, t.Priority, t.AssigneeID, t.RequesterEmail, t.Tags, createdBy))
}

// updateTicket writes the new state if the version is still the one read.
// Only commit calls it, after deriving the change's events.
func updateTicket(ctx context.Context, tx tenancy.Tx, t Ticket) (*Ticket, error) {
	nt, err := scanTicket(tx.QueryRow(ctx, `UPDATE tickets SET title = $3, status = $4, priority = $5, assignee_id = $6, tags = $7,
			closed_at = $8, deleted_at = $9, resolved_at = CASE WHEN $4 = 'resolved' AND status <> 'resolved' THEN now() ELSE resolved_at END,
			version = version + 1, updated_at = now()
		WHERE id = $1 AND version = $2 RETURNING `+ticketColumns,
		t.ID, t.Version, t.Title, t.Status, t.Priority, t.AssigneeID, t.Tags, t.ClosedAt, t.DeletedAt))
	if errors.Is(err, errTicketNotFound) {
		return nil, errs.Errorf(errs.ErrConflict, "ticket %d changed meanwhile; reload and retry", t.Number)
	}
	return nt, err
}

func insertEvent(ctx context.Context, tx tenancy.Tx, eventID, ticketID uuid.UUID, actor *uuid.UUID, typ string, data map[string]any) (*Event, error) {
	e := Event{Type: typ, ActorID: actor, Data: data}
	err := tx.QueryRow(ctx, `INSERT INTO ticket_events (event_id, ticket_id, actor_id, type, data) VALUES ($1, $2, $3, $4, $5)
		RETURNING id, created_at`, eventID, ticketID, actor, typ, data).Scan(&e.ID, &e.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("append %s event: %w", typ, err)
	}
	return &e, nil
}

func insertComment(ctx context.Context, tx tenancy.Tx, ticketID, author uuid.UUID, body string, internal bool) (*Comment, error) {
	c := Comment{Body: body, Internal: internal, AuthorID: author, Attachments: []Attachment{}}
	err := tx.QueryRow(ctx, `INSERT INTO comments (ticket_id, author_id, body, internal) VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
		ticketID, author, body, internal).Scan(&c.ID, &c.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("insert comment: %w", err)
	}
	return &c, nil
}

// listFilter selects tickets for a list page. Zero fields do not filter.
type listFilter struct {
	Status, Priority, Tag, Requester string
	Assignee                         uuid.UUID
	After                            *ticketCursor
	Limit                            int
}

type ticketCursor struct {
	UpdatedAt time.Time `json:"u"`
	ID        uuid.UUID `json:"i"`
}

// listTickets builds its WHERE clause from constant fragments, one per
// filter present, so each filter combination gets a plan that uses its index;
// user values only ever travel as parameters.
func listTickets(ctx context.Context, tx tenancy.Tx, f listFilter) ([]*Ticket, error) {
	var (
		where = []string{"deleted_at IS NULL"}
		args  []any
	)
	add := func(fragment string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(fragment, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Priority != "" {
		add("priority = ?", f.Priority)
	}
	if f.Tag != "" {
		add("tags @> ARRAY[?::text]", f.Tag)
	}
	if f.Assignee != uuid.Nil {
		add("assignee_id = ?", f.Assignee)
	}
	if f.Requester != "" {
		// Both sides canonical: plain equality, the index's own comparison.
		add("requester_email = ?", f.Requester)
	}
	if f.After != nil {
		args = append(args, f.After.UpdatedAt, f.After.ID)
		where = append(where, fmt.Sprintf("(updated_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, f.Limit)
	q := `SELECT ` + ticketColumns + ` FROM tickets WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY updated_at DESC, id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tickets: %w", err)
	}
	defer rows.Close()
	out := []*Ticket{}
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func listComments(ctx context.Context, tx tenancy.Tx, ticketID uuid.UUID, withInternal bool, afterID uuid.UUID, afterAt time.Time, limit int) ([]Comment, error) {
	rows, err := tx.Query(ctx, `SELECT id, body, internal, author_id, created_at FROM comments
		WHERE ticket_id = $1 AND ($2 OR NOT internal) AND (created_at, id) > ($3, $4)
		ORDER BY created_at, id LIMIT $5`, ticketID, withInternal, afterAt, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list comments: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Comment, error) {
		c := Comment{Attachments: []Attachment{}}
		err := row.Scan(&c.ID, &c.Body, &c.Internal, &c.AuthorID, &c.CreatedAt)
		return c, err
	})
}

// listEvents pages the timeline oldest first; events about internal notes
// are left out unless withInternal.
func listEvents(ctx context.Context, tx tenancy.Tx, ticketID uuid.UUID, withInternal bool, afterID int64, limit int) ([]Event, error) {
	rows, err := tx.Query(ctx, `SELECT id, type, actor_id, data, created_at FROM ticket_events
		WHERE ticket_id = $1 AND id > $2 AND ($3 OR NOT coalesce((data->>'internal')::boolean, false))
		ORDER BY id LIMIT $4`, ticketID, afterID, withInternal, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var (
			e   Event
			raw []byte
		)
		if err := row.Scan(&e.ID, &e.Type, &e.ActorID, &raw, &e.CreatedAt); err != nil {
			return e, err
		}
		return e, json.Unmarshal(raw, &e.Data)
	})
}

// watchersOf lists the members following a ticket: its creator and its commenters.
func watchersOf(ctx context.Context, tx tenancy.Tx, ticketID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, `SELECT created_by FROM tickets WHERE id = $1 AND created_by IS NOT NULL
		UNION SELECT author_id FROM comments WHERE ticket_id = $1`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("list watchers: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("list watchers: %w", err)
	}
	return ids, nil
}
