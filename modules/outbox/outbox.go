// Package outbox records side-effect events in the same transaction as the
// change that caused them (infra.outbox of the tenant's database), and wakes
// the relay with NOTIFY when that transaction commits.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Channel is the NOTIFY channel the relay listens on.
const Channel = "patchdesk_outbox"

// Enqueue inserts events into the outbox within tx and schedules a NOTIFY,
// which PostgreSQL delivers only if tx commits. Tenant roles may insert but
// not read the outbox.
func Enqueue(ctx context.Context, tx tenancy.Tx, evs ...events.Envelope) error {
	for _, e := range evs {
		e.TenantID = tx.Tenant().ID
		payload, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode outbox event: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO infra.outbox (event_id, tenant_id, ticket_id, type, payload) VALUES ($1, $2, $3, $4, $5)`,
			e.ID, e.TenantID, e.TicketID, e.Type, payload); err != nil {
			return fmt.Errorf("enqueue outbox event: %w", err)
		}
	}
	if len(evs) > 0 {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, Channel); err != nil {
			return fmt.Errorf("notify outbox: %w", err)
		}
	}
	return nil
}

// MarkProcessed records, in the consumer's tenant transaction, that
// consumer applied the event; false means it already had (a redelivery),
// which makes at-least-once delivery idempotent.
func MarkProcessed(ctx context.Context, tx tenancy.Tx, consumer string, event uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, consumer, event)
	if err != nil {
		return false, fmt.Errorf("mark event processed: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkProcessedMany is MarkProcessed for the events of a batch in one
// statement: it returns the events consumer had not applied yet, which the
// caller then applies in the same transaction.
func MarkProcessedMany(ctx context.Context, tx tenancy.Tx, consumer string, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	rows, err := tx.Query(ctx, `INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
		ON CONFLICT DO NOTHING RETURNING event_id`, consumer, ids)
	if err != nil {
		return nil, fmt.Errorf("mark events processed: %w", err)
	}
	fresh, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("mark events processed: %w", err)
	}
	out := make(map[uuid.UUID]bool, len(fresh))
	for _, id := range fresh {
		out[id] = true
	}
	return out, nil
}
