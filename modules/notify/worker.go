package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// deliveryArgs identifies one round of attempts at a delivery. A manual
// retry starts a new round, hence a new (unique) job.
type deliveryArgs struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	DeliveryID uuid.UUID `json:"delivery_id"`
	Round      int       `json:"round"`
}

// Kind names the job for River.
func (deliveryArgs) Kind() string { return "patchdesk.delivery" }

// InsertOpts makes scheduling idempotent per (tenant, delivery, round).
func (deliveryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "deliveries", UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type deliveryWorker struct {
	river.WorkerDefaults[deliveryArgs]
	svc *Service
}

// Work makes one attempt; a returned error makes River retry at NextRetry.
func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[deliveryArgs]) error {
	return w.svc.attempt(ctx, job.Args, job.Attempt)
}

// NextRetry follows the service's backoff, the same time the delivery row shows.
func (w *deliveryWorker) NextRetry(job *river.Job[deliveryArgs]) time.Time {
	return time.Now().Add(w.svc.backoff(job.Args.DeliveryID, job.Attempt))
}

// Timeout bounds one attempt, beyond the webhook and SMTP timeouts.
func (w *deliveryWorker) Timeout(*river.Job[deliveryArgs]) time.Duration {
	return w.svc.cfg.AttemptTimeout
}

// infraRetry is how soon an attempt that could not read its delivery (the
// database away) runs again; snoozing does not use up one of its attempts.
const infraRetry = 2 * time.Second

// attempt sends a delivery once and records the outcome: sent; failed with
// the next attempt time; dead after the last attempt; or cancelled when its
// webhook is gone. The row is checked before sending and written after, so a
// re-run (a retried or rescued job, a reconciled delivery) never sends what
// was recorded sent; only a crash between the send and the record repeats
// one, which receivers dedupe by the delivery id (at-least-once).
func (s *Service) attempt(ctx context.Context, args deliveryArgs, attempt int) error {
	t, err := s.reg.ByID(ctx, args.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return river.JobCancel(err)
	}
	if errs.IsTransient(err) {
		return river.JobSnooze(infraRetry)
	}
	if err != nil {
		return err
	}
	if t.Status != tenancy.StatusActive {
		return river.JobSnooze(5 * time.Minute) // suspended: no side effects until resumed
	}
	var (
		d          *Delivery
		secret     string
		hookActive bool
	)
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if d, err = getDelivery(ctx, tx, args.DeliveryID, false); err != nil {
			return err
		}
		if d.Channel == "webhook" && d.webhookID != nil {
			secret, hookActive, err = webhookTarget(ctx, tx, *d.webhookID)
		}
		return err
	})
	if errors.Is(err, errs.ErrNotFound) {
		return river.JobCancel(err) // the delivery is gone
	}
	if errs.IsTransient(err) {
		return river.JobSnooze(infraRetry)
	}
	if err != nil {
		return err
	}
	if d.round != args.Round || (d.Status != StatusPending && d.Status != StatusFailed) {
		return nil // already done, or superseded by a manual retry
	}
	if d.Channel == "webhook" && !hookActive {
		msg := "webhook deactivated or deleted before delivery"
		if err := s.record(ctx, t, d.ID, StatusCancelled, &msg, nil); err != nil {
			return err
		}
		s.metrics.outcomes.WithLabelValues(d.Channel, StatusCancelled).Inc()
		return nil
	}
	sendErr := s.send(ctx, t, d, secret)
	status, next, lastErr := StatusSent, (*time.Time)(nil), (*string)(nil)
	// The row's count survives a lost job; River's restarts with a new one.
	attempt = max(attempt, d.Attempts+1)
	if sendErr != nil {
		msg := sendErr.Error()
		lastErr = &msg
		status = StatusFailed
		if attempt >= s.cfg.MaxAttempts {
			status = StatusDead
		} else {
			at := time.Now().Add(s.backoff(d.ID, attempt))
			next = &at
		}
	}
	if err := s.record(ctx, t, d.ID, status, lastErr, next); err != nil {
		return err
	}
	s.metrics.outcomes.WithLabelValues(d.Channel, status).Inc()
	switch status {
	case StatusSent:
		s.metrics.latency.WithLabelValues(d.Channel).Observe(time.Since(d.occurredAt).Seconds())
		return nil
	case StatusDead:
		return river.JobCancel(sendErr)
	}
	return sendErr
}

// record stores an attempt's outcome, retrying while the database is
// unreachable (within the job's timeout): the send already happened, and
// giving up here would make the next run send it again.
func (s *Service) record(ctx context.Context, t *tenancy.Tenant, id uuid.UUID, status string, lastErr *string, next *time.Time) error {
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			return recordAttempt(ctx, tx, id, status, lastErr, next)
		})
		if err == nil || !errs.IsTransient(err) {
			return err
		}
		s.cfg.Log.WarnContext(ctx, "record delivery attempt: retrying", "delivery", id, "status", status, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("record delivery attempt %s (%s): %w", id, status, err)
		case <-time.After(delay):
		}
	}
}

func (s *Service) send(ctx context.Context, t *tenancy.Tenant, d *Delivery, secret string) error {
	switch d.Channel {
	case "email":
		var p struct{ From, To, Message string }
		if err := json.Unmarshal(d.payload, &p); err != nil {
			return fmt.Errorf("decode email: %w", err)
		}
		return s.mailer.Send(ctx, t.ID, d.ID, p.From, p.To, []byte(p.Message))
	case "webhook":
		return postWebhook(ctx, s.http, d.Target, secret, d.ID.String(), d.EventID.String(), d.EventType, d.payload)
	}
	return fmt.Errorf("unknown channel %q", d.Channel)
}
