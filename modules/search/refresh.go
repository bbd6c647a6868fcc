package search

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// refreshArgs asks for a document's tsvectors to be brought up to its text.
// Jobs are not unique: one queued while another runs must not be dropped,
// and a job finding its document clean costs one indexed UPDATE.
type refreshArgs struct {
	TenantID uuid.UUID `json:"tenant_id"`
	TicketID uuid.UUID `json:"ticket_id"`
}

// Kind names the job for River.
func (refreshArgs) Kind() string { return "patchdesk.search-refresh" }

// InsertOpts puts refreshes on their own queue, so that they never wait
// behind deliveries or exports.
func (refreshArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueSearch, MaxAttempts: 10}
}

type refreshWorker struct {
	river.WorkerDefaults[refreshArgs]
	svc *Service
}

// Work recomputes a dirty document's tsvectors: clearing the mark makes the
// table's trigger compute them from the text as it is now, every change
// made since the mark included (a concurrent append waits for the row lock
// and marks the document again, queueing another refresh).
func (w *refreshWorker) Work(ctx context.Context, job *river.Job[refreshArgs]) error {
	t, err := w.svc.reg.ByID(ctx, job.Args.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	var since time.Time
	err = w.svc.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `UPDATE search_docs d SET dirty_since = NULL
			FROM (SELECT ticket_id, dirty_since FROM search_docs WHERE ticket_id = $1 AND dirty_since IS NOT NULL FOR UPDATE) old
			WHERE d.ticket_id = old.ticket_id RETURNING old.dirty_since`, job.Args.TicketID).Scan(&since)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // refreshed by an earlier job, or deleted
	}
	if err != nil {
		return fmt.Errorf("refresh search document: %w", err)
	}
	w.svc.lag.Observe(time.Since(since).Seconds())
	return nil
}

func (s *Service) queueRefresh(ctx context.Context, t *tenancy.Tenant, ticket uuid.UUID) error {
	if err := s.jobs.Insert(ctx, t.DatabaseID, river.InsertManyParams{Args: refreshArgs{TenantID: t.ID, TicketID: ticket}}); err != nil {
		return fmt.Errorf("queue search refresh: %w", err)
	}
	return nil
}
