package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

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
func (w *deliveryWorker) Timeout(*river.Job[deliveryArgs]) time.Duration { return time.Minute }

// attempt sends a delivery once and records the outcome: sent; failed with
// the next attempt time; or dead after the last attempt.
func (s *Service) attempt(ctx context.Context, args deliveryArgs, attempt int) error {
	t, err := s.reg.ByID(ctx, args.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if t.Status != tenancy.StatusActive {
		return river.JobSnooze(5 * time.Minute) // suspended: no side effects until resumed
	}
	var (
		d      *Delivery
		secret string
	)
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if d, err = getDelivery(ctx, tx, args.DeliveryID, false); err != nil {
			return err
		}
		if d.webhookID != nil {
			secret, err = webhookSecret(ctx, tx, *d.webhookID)
		}
		return err
	})
	if err != nil {
		return river.JobCancel(err)
	}
	if d.Status == StatusSent || d.Status == StatusDead || d.round != args.Round {
		return nil // already done, or superseded by a manual retry
	}
	sendErr := s.send(ctx, d, secret)
	status, next, lastErr := StatusSent, (*time.Time)(nil), (*string)(nil)
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
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		return recordAttempt(ctx, tx, d.ID, status, lastErr, next)
	})
	if err != nil {
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

func (s *Service) send(ctx context.Context, d *Delivery, secret string) error {
	switch d.Channel {
	case "email":
		var p struct{ From, To, Message string }
		if err := json.Unmarshal(d.payload, &p); err != nil {
			return fmt.Errorf("decode email: %w", err)
		}
		return s.mailer.Send(ctx, d.ID, p.From, p.To, []byte(p.Message))
	case "webhook":
		return postWebhook(ctx, s.http, d.Target, secret, d.EventID.String(), d.EventType, d.payload)
	}
	return fmt.Errorf("unknown channel %q", d.Channel)
}
