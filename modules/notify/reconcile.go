package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/tenancy"
)

// reconcileGrace is how old a due delivery must be before the reconciler
// schedules it: the consumer inserts its job right after writing the row, so
// younger rows are still in its hands (scheduling them too would be harmless,
// River's uniqueness drops the duplicate, but pointless).
const reconcileGrace = 5 * time.Second

// reconcileBatch bounds the deliveries one tenant's reconciliation schedules.
const reconcileBatch = 1000

// reconcileArgs asks for one database's deliveries to be reconciled.
type reconcileArgs struct {
	DatabaseID string `json:"database_id"`
}

// Kind names the job for River.
func (reconcileArgs) Kind() string { return "patchdesk.delivery-reconcile" }

// InsertOpts keeps one reconciliation per database and period.
func (reconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "deliveries", MaxAttempts: 1,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: reconcileGrace}}
}

type reconcileWorker struct {
	river.WorkerDefaults[reconcileArgs]
	svc *Service
}

// Work schedules every due delivery of the database's active tenants.
func (w *reconcileWorker) Work(ctx context.Context, job *river.Job[reconcileArgs]) error {
	_, err := w.svc.Reconcile(ctx, job.Args.DatabaseID)
	return err
}

// Reconcile schedules a job for every pending or failed delivery of the
// database's active tenants that is due and older than the grace period.
// Scheduling is not in the transaction that writes the delivery rows (River's
// tables are not the tenant's), so a crash, a database blip or a failed job
// insert between the two can leave a delivery without a job; this finds it.
// Deliveries that still have a live job are skipped by River's uniqueness.
// It returns how many deliveries had lost their job and got a new one.
func (s *Service) Reconcile(ctx context.Context, databaseID string) (int, error) {
	tenants, err := s.reg.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile deliveries: %w", err)
	}
	var errs []error
	n := 0
	for _, t := range tenants {
		if t.DatabaseID != databaseID || t.Status != tenancy.StatusActive {
			continue
		}
		var due []pendingDelivery
		err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			due, err = dueDeliveries(ctx, tx, reconcileGrace, reconcileBatch)
			return err
		})
		added := 0
		if err == nil {
			added, err = s.scheduleNew(ctx, t, due)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile deliveries of %s: %w", t.Slug, err))
			continue
		}
		if added > 0 {
			s.cfg.Log.WarnContext(ctx, "scheduled deliveries that had lost their job", "tenant", t.Slug, "count", added)
		}
		n += added
	}
	return n, errors.Join(errs...)
}
