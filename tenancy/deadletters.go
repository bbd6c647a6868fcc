package tenancy

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replay records that an operator sent a dead-lettered message back
// through its consumer group successfully.
type Replay struct {
	DeadLetterID string
	Group        string
	EventID      string
	Replays      int
	ReplayedAt   time.Time
}

// RecordReplay stores (or counts again) the successful replay of a dead letter.
func (r *Registry) RecordReplay(ctx context.Context, deadLetterID, group, eventID string) error {
	_, err := r.control.Exec(ctx, `INSERT INTO control.dead_letter_replays (dead_letter_id, consumer_group, event_id)
		VALUES ($1, $2, $3)
		ON CONFLICT (dead_letter_id) DO UPDATE SET replays = control.dead_letter_replays.replays + 1, replayed_at = now()`,
		deadLetterID, group, eventID)
	if err != nil {
		return fmt.Errorf("record replay of %s: %w", deadLetterID, err)
	}
	return nil
}

// Replays returns the recorded replays by dead-letter id.
func (r *Registry) Replays(ctx context.Context) (map[string]Replay, error) {
	rows, err := r.control.Query(ctx, `SELECT dead_letter_id, consumer_group, event_id, replays, replayed_at FROM control.dead_letter_replays`)
	if err != nil {
		return nil, fmt.Errorf("read replays: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Replay, error) {
		var rp Replay
		err := row.Scan(&rp.DeadLetterID, &rp.Group, &rp.EventID, &rp.Replays, &rp.ReplayedAt)
		return rp, err
	})
	if err != nil {
		return nil, fmt.Errorf("read replays: %w", err)
	}
	out := make(map[string]Replay, len(list))
	for _, rp := range list {
		out[rp.DeadLetterID] = rp
	}
	return out, nil
}
