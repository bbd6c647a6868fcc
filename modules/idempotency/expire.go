package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Tenants lists the tenants whose keys expire; *tenancy.Registry implements it.
type Tenants interface {
	List(ctx context.Context) ([]*tenancy.Tenant, error)
}

// expireBatch bounds the rows one statement deletes, so that a tenant with a
// burst of keys never holds a long transaction.
const expireBatch = 5000

// expireArgs asks for one database's expired keys to be deleted.
type expireArgs struct {
	DatabaseID string `json:"database_id"`
}

// Kind names the job for River.
func (expireArgs) Kind() string { return "patchdesk.idempotency-expire" }

// InsertOpts keeps one expiry per database at a time; a failed run is
// simply redone by the next period.
func (expireArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 1,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute}}
}

type expireWorker struct {
	river.WorkerDefaults[expireArgs]
	store   *Store
	tenants Tenants
}

// Work deletes the expired keys of the database's tenants.
func (w *expireWorker) Work(ctx context.Context, job *river.Job[expireArgs]) error {
	_, err := w.store.Expire(ctx, w.tenants, job.Args.DatabaseID, time.Now().Add(-TTL))
	return err
}

// Schedule registers the expiry job with the queue: every database's queue
// deletes keys older than TTL every interval (and once at start).
func (s *Store) Schedule(q *jobs.Queue, tenants Tenants, every time.Duration) error {
	if tenants == nil {
		return errors.New("idempotency: tenants are required")
	}
	if err := jobs.Add(q, &expireWorker{store: s, tenants: tenants}); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	q.Periodic(every, func(databaseID string) river.JobArgs { return expireArgs{DatabaseID: databaseID} })
	return nil
}

// Expire deletes the keys created before cutoff of every tenant placed in
// the database (all tenants when databaseID is empty) and returns how many
// it deleted. Expired keys are already ignored by lookups; this reclaims
// their space.
func (s *Store) Expire(ctx context.Context, tenants Tenants, databaseID string, cutoff time.Time) (int64, error) {
	list, err := tenants.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire idempotency keys: %w", err)
	}
	var (
		total int64
		errs  []error
	)
	for _, t := range list {
		if databaseID != "" && t.DatabaseID != databaseID || t.Status != tenancy.StatusActive {
			continue
		}
		for {
			var n int64
			err := s.tx.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
				tag, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (member_id, key_hash) IN (
					SELECT member_id, key_hash FROM idempotency_keys WHERE created_at < $1 LIMIT $2)`, cutoff, expireBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("expire idempotency keys of %s: %w", t.Slug, err))
				break
			}
			total += n
			if n < expireBatch {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}
