package tickets

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// sourceBatch bounds how many rows are held in memory while replaying, so fn
// may use the same transaction (a connection runs one query at a time).
const sourceBatch = 1000

// ForEachSource calls fn for every live ticket of the tenant, in number order.
func (*Service) ForEachSource(ctx context.Context, tx tenancy.Tx, fn func(events.TicketText) error) error {
	var after int64
	for {
		rows, err := tx.Query(ctx, `SELECT `+ticketColumns+`,
				coalesce((SELECT string_agg(body, ' ' ORDER BY created_at, id) FROM comments c WHERE c.ticket_id = t.id AND NOT internal), ''),
				coalesce((SELECT string_agg(body, ' ' ORDER BY created_at, id) FROM comments c WHERE c.ticket_id = t.id AND internal), '')
			FROM tickets t WHERE deleted_at IS NULL AND number > $1 ORDER BY number LIMIT $2`, after, sourceBatch)
		if err != nil {
			return fmt.Errorf("read ticket sources: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.TicketText, error) {
			var (
				s events.TicketText
				t Ticket
			)
			err := row.Scan(&t.ID, &t.Number, &t.Title, &t.Body, &t.Status, &t.Priority, &t.AssigneeID, &t.RequesterEmail, &t.Tags,
				&t.CreatedAt, &t.UpdatedAt, &t.Version, &t.ClosedAt, &t.DeletedAt, &s.PublicText, &s.InternalText)
			s.Ticket = t.snapshot()
			return s, err
		})
		if err != nil {
			return fmt.Errorf("read ticket sources: %w", err)
		}
		for _, s := range batch {
			if err := fn(s); err != nil {
				return err
			}
			after = s.Ticket.Number
		}
		if len(batch) < sourceBatch {
			return nil
		}
	}
}

// ForEachEvent calls fn for every timeline event of the tenant, oldest first.
func (*Service) ForEachEvent(ctx context.Context, tx tenancy.Tx, fn func(events.Replayed) error) error {
	var after int64
	for {
		rows, err := tx.Query(ctx, `SELECT e.id, e.event_id, e.ticket_id, t.number, e.type, e.actor_id, e.data, e.created_at
			FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id WHERE e.id > $1 ORDER BY e.id LIMIT $2`, after, sourceBatch)
		if err != nil {
			return fmt.Errorf("read timeline: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.Replayed, error) {
			var (
				e   events.Replayed
				raw []byte
			)
			if err := row.Scan(&after, &e.EventID, &e.TicketID, &e.TicketNumber, &e.Type, &e.ActorID, &raw, &e.At); err != nil {
				return e, err
			}
			return e, json.Unmarshal(raw, &e.Data)
		})
		if err != nil {
			return fmt.Errorf("read timeline: %w", err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(batch) < sourceBatch {
			return nil
		}
	}
}
