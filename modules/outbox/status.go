package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/tenancy"
)

// DatabaseStatus is the outbox of one tenant database as an operator sees
// it: what waits to be published and whether some relay leads it.
type DatabaseStatus struct {
	Database string `json:"database"`
	// Leader reports that a relay session holds the database's relay lock.
	Leader bool `json:"leader"`
	// Backlog counts unpublished events; Oldest is the age of the oldest.
	Backlog int64         `json:"backlog"`
	Oldest  time.Duration `json:"oldest_ns"`
}

// Inspect reads the outbox of every database without taking part in
// relaying: the leader is seen in pg_locks, never by taking the lock (which
// would make a real relay stand by).
func Inspect(ctx context.Context, dbs Databases) ([]DatabaseStatus, error) {
	ids, err := dbs.Databases(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect outbox: %w", err)
	}
	out := make([]DatabaseStatus, 0, len(ids))
	for _, db := range ids {
		st := DatabaseStatus{Database: db}
		err := dbs.WithInfraConn(ctx, db, func(ctx context.Context, c tenancy.InfraConn) error {
			var secs float64
			// A bigint advisory key shows in pg_locks as classid (high 32
			// bits) and objid (low 32 bits) with objsubid 1.
			err := c.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
					AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
					AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & x'ffffffff'::bigint)),
				(SELECT count(*) FROM infra.outbox WHERE published_at IS NULL),
				(SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM infra.outbox WHERE published_at IS NULL)`,
				relayLockID).Scan(&st.Leader, &st.Backlog, &secs)
			st.Oldest = time.Duration(secs * float64(time.Second))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("inspect outbox of %s: %w", db, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// Processed reports whether consumer already applied the event in this
// tenant (MarkProcessed recorded it): a replayed event it has processed is
// skipped by the consumer.
func Processed(ctx context.Context, tx tenancy.Tx, consumer string, event uuid.UUID) (bool, error) {
	var done bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2)`, consumer, event).Scan(&done)
	if err != nil {
		return false, fmt.Errorf("read processed event: %w", err)
	}
	return done, nil
}
