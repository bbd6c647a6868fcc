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
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/outbox"
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

// insertTicket takes the next gap-free ticket number and inserts the
// ticket, in one statement: the counter row stays locked until the
// transaction ends, so numbers follow commit order, and the fewer round
// trips the transaction makes after taking it, the sooner the tenant's next
// create may go.
func insertTicket(ctx context.Context, tx tenancy.Tx, t *Ticket, createdBy uuid.UUID) (*Ticket, error) {
	return scanTicket(tx.QueryRow(ctx, `WITH n AS (UPDATE ticket_counter SET last_number = last_number + 1 RETURNING last_number)
		INSERT INTO tickets (number, title, body, status, priority, assignee_id, requester_email, tags, created_by)
		SELECT n.last_number, $1, $2, $3, $4, $5, $6, $7, $8 FROM n RETURNING `+ticketColumns,
		t.Title, t.Body, t.Status, t.Priority, t.AssigneeID, t.RequesterEmail, t.Tags, createdBy))
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

// timelineRow is one timeline entry to append.
type timelineRow struct {
	eventID uuid.UUID
	typ     string
	data    map[string]any
}

// appendEventsSQL appends timeline entries ($3-$5, in order) and their
// outbox events ($6, the envelopes; tenant $7), writing each entry's id into
// its envelope's data.event.id, and wakes the relay, in one statement. The
// outbox rows are inserted in the entries' order, which is the order the
// relay publishes them in. The NOTIFY is delivered only if the transaction
// commits.
const appendEventsSQL = `WITH input AS (
	SELECT * FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[]) WITH ORDINALITY AS i(event_id, type, data, envelope, ord)
), timeline AS (
	INSERT INTO ticket_events (event_id, ticket_id, actor_id, type, data)
	SELECT event_id, $1, $2, type, data FROM input ORDER BY ord
	RETURNING id, event_id
), queued AS (
	INSERT INTO infra.outbox (event_id, tenant_id, ticket_id, type, payload)
	SELECT i.event_id, $7, $1, 'ticket.' || i.type, jsonb_set(i.envelope, '{data,event,id}', to_jsonb(t.id))
	FROM input i JOIN timeline t USING (event_id) ORDER BY i.ord
	RETURNING 1
)
SELECT (SELECT count(*) FROM queued), (SELECT pg_notify($8, '')::text)`

// appendEvents inserts timeline entries and their outbox events (see
// appendEventsSQL).
func appendEvents(ctx context.Context, tx tenancy.Tx, ticketID uuid.UUID, actor *uuid.UUID, rows []timelineRow, envs []events.Envelope) error {
	ids := make([]uuid.UUID, len(rows))
	types := make([]string, len(rows))
	// JSON travels as text: pgx would send []byte as bytea.
	datas := make([]string, len(rows))
	payloads := make([]string, len(rows))
	for i, r := range rows {
		data, err := json.Marshal(r.data)
		if err != nil {
			return fmt.Errorf("encode %s event: %w", r.typ, err)
		}
		envs[i].TenantID = tx.Tenant().ID
		payload, err := json.Marshal(envs[i])
		if err != nil {
			return fmt.Errorf("encode outbox event: %w", err)
		}
		datas[i], payloads[i] = string(data), string(payload)
		ids[i], types[i] = r.eventID, r.typ
	}
	var (
		n        int
		notified *string
	)
	if err := tx.QueryRow(ctx, appendEventsSQL, ticketID, actor, ids, types, datas, payloads, tx.Tenant().ID, outbox.Channel).Scan(&n, &notified); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	if n != len(rows) {
		return fmt.Errorf("append events: %d of %d queued", n, len(rows))
	}
	return nil
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
