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
// The consumer queues one when a document turns dirty (or its mark is
// stale); jobs are not unique, as one queued while another runs must not be
// dropped, and a job finding its document clean costs one indexed query.
type refreshArgs struct {
	TenantID uuid.UUID `json:"tenant_id"`
	TicketID uuid.UUID `json:"ticket_id"`
}

// Kind names the job for River.
func (refreshArgs) Kind() string { return "patchdesk.search-refresh" }

// InsertOpts puts refreshes on their own queue, so that they never wait
// behind deliveries or exports. A discarded refresh leaves its document
// stale until the ticket's next event, so failures are retried with River's
// growing backoff for about three weeks. Jobs are not unique: River counts a
// running job as a duplicate, and a change committed just after a running
// refresh checked the document would then get no refresh at all.
func (refreshArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueSearch, MaxAttempts: 25}
}

// refreshBackoff spaces the refreshes of a document that changes while it
// is refreshed (River promotes snoozed jobs every few seconds, so the real
// spacing is up to about 5 s).
const refreshBackoff = time.Second

type refreshWorker struct {
	river.WorkerDefaults[refreshArgs]
	svc *Service
}

// refreshSQL computes a dirty document's vectors from a snapshot of its
// text, before the UPDATE takes the row lock, so that the consumer appending
// to the same document never waits for the computation. The mark is cleared
// only if the text is still the one computed from (text_rev); otherwise the
// newer vectors are kept and the document stays dirty for another round.
const refreshSQL = `WITH cur AS (
	SELECT d.ticket_id, d.text_rev, d.dirty_since, v.doc_public, v.doc_all
	FROM search_docs d, search_doc_vectors(d.title, d.tags_text, d.body, d.public_text, d.internal_text, d.requester_email) v
	WHERE d.ticket_id = $1 AND d.dirty_since IS NOT NULL
)
UPDATE search_docs d SET doc_public = cur.doc_public, doc_all = cur.doc_all,
	dirty_since = CASE WHEN d.text_rev = cur.text_rev THEN NULL ELSE d.dirty_since END
FROM cur WHERE d.ticket_id = cur.ticket_id
RETURNING cur.dirty_since, d.dirty_since IS NULL`

// Work brings a dirty document's vectors up to its text, in as many rounds
// as it takes while the text keeps changing.
func (w *refreshWorker) Work(ctx context.Context, job *river.Job[refreshArgs]) error {
	t, err := w.svc.reg.ByID(ctx, job.Args.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	var (
		since time.Time
		clean bool
	)
	err = w.svc.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		// The commit does not wait for its WAL flush, so the row lock the
		// consumer may be waiting for is released sooner. Nothing can be
		// lost: River records the job completed afterwards with a
		// synchronous commit, which flushes this one's WAL first; a crash
		// before that leaves the job unfinished, and River runs it again.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, refreshSQL, job.Args.TicketID).Scan(&since, &clean)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // refreshed by an earlier job, or deleted
	}
	if err != nil {
		return fmt.Errorf("refresh search document: %w", err)
	}
	if !clean {
		// Changed while computing: the document is being written to as fast
		// as it can be indexed. Go again later rather than at once, so that
		// a tenant flooding one ticket pays with that ticket's freshness,
		// not with the database time every other tenant's indexing needs.
		return river.JobSnooze(refreshBackoff)
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
