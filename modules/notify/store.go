package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Delivery statuses.
const (
	StatusPending = "pending"
	StatusSent    = "sent"
	StatusFailed  = "failed"
	StatusDead    = "dead"
	// StatusCancelled: the webhook was deactivated or deleted before the delivery was sent.
	StatusCancelled = "cancelled"
)

// Delivery is one email or webhook, with its attempt history.
type Delivery struct {
	ID            uuid.UUID  `json:"id"`
	Channel       string     `json:"channel"`
	Target        string     `json:"target"`
	EventID       uuid.UUID  `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	LastError     *string    `json:"last_error"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	SentAt        *time.Time `json:"sent_at"`

	round      int
	webhookID  *uuid.UUID
	payload    []byte
	occurredAt time.Time
}

const deliveryColumns = `id, channel, target, event_id, event_type, status, attempts, last_error, next_attempt_at,
	created_at, sent_at, round, webhook_id, payload, occurred_at`

func scanDelivery(row pgx.Row) (*Delivery, error) {
	var d Delivery
	err := row.Scan(&d.ID, &d.Channel, &d.Target, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.LastError,
		&d.NextAttemptAt, &d.CreatedAt, &d.SentAt, &d.round, &d.webhookID, &d.payload, &d.occurredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.Errorf(errs.ErrNotFound, "delivery not found")
	}
	if err != nil {
		return nil, fmt.Errorf("scan delivery: %w", err)
	}
	return &d, nil
}

// insertDelivery records a pending delivery; an existing (channel, target,
// event) row is left alone. Webhook deliveries (nil payload) carry the event
// as published.
func insertDelivery(ctx context.Context, tx tenancy.Tx, channel, target string, webhookID *uuid.UUID, ev *ticketEvent, payload any) error {
	body := []byte(ev.raw)
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return fmt.Errorf("encode delivery: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO deliveries (channel, target, webhook_id, event_id, event_type, payload, next_attempt_at, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, now(), $7) ON CONFLICT (channel, target, event_id) DO NOTHING`,
		channel, target, webhookID, ev.ID, ev.Type, body, ev.OccurredAt)
	if err != nil {
		return fmt.Errorf("insert delivery: %w", err)
	}
	return nil
}

type pendingDelivery struct {
	ID    uuid.UUID
	Round int
}

func pendingFor(ctx context.Context, tx tenancy.Tx, event uuid.UUID) ([]pendingDelivery, error) {
	rows, err := tx.Query(ctx, `SELECT id, round FROM deliveries WHERE event_id = $1 AND status = 'pending'`, event)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingDelivery, error) {
		var p pendingDelivery
		return p, r.Scan(&p.ID, &p.Round)
	})
}

// pendingForAll is pendingFor for the events of a batch.
func pendingForAll(ctx context.Context, tx tenancy.Tx, events []uuid.UUID) ([]pendingDelivery, error) {
	rows, err := tx.Query(ctx, `SELECT id, round FROM deliveries WHERE event_id = ANY($1) AND status = 'pending'`, events)
	if err != nil {
		return nil, fmt.Errorf("pending deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingDelivery, error) {
		var p pendingDelivery
		return p, r.Scan(&p.ID, &p.Round)
	})
}

// dueDeliveries lists deliveries waiting for an attempt whose time passed
// more than grace ago: the ones a lost job would leave behind.
func dueDeliveries(ctx context.Context, tx tenancy.Tx, grace time.Duration, limit int) ([]pendingDelivery, error) {
	rows, err := tx.Query(ctx, `SELECT id, round FROM deliveries WHERE status IN ('pending', 'failed')
		AND coalesce(next_attempt_at, updated_at) < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2`,
		grace.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingDelivery, error) {
		var p pendingDelivery
		return p, r.Scan(&p.ID, &p.Round)
	})
}

func getDelivery(ctx context.Context, tx tenancy.Tx, id uuid.UUID, forUpdate bool) (*Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return scanDelivery(tx.QueryRow(ctx, q, id))
}

// recordAttempt stores the outcome of one attempt.
func recordAttempt(ctx context.Context, tx tenancy.Tx, id uuid.UUID, status string, lastError *string, next *time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE deliveries SET status = $2, attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
		sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END, updated_at = now() WHERE id = $1`, id, status, lastError, next)
	if err != nil {
		return fmt.Errorf("record delivery attempt: %w", err)
	}
	return nil
}

// Webhook is a registered webhook target.
type Webhook struct {
	ID        uuid.UUID `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	// Secret is shown only in the response that created the webhook.
	Secret string `json:"secret,omitempty"`
}

func (w Webhook) subscribes(eventType string) bool {
	return slices.Contains(w.Events, "*") || slices.Contains(w.Events, eventType)
}

func activeWebhooks(ctx context.Context, tx tenancy.Tx) ([]Webhook, error) {
	rows, err := tx.Query(ctx, `SELECT id, url, events, active, created_at FROM webhooks WHERE active ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Webhook, error) {
		var w Webhook
		return w, r.Scan(&w.ID, &w.URL, &w.Events, &w.Active, &w.CreatedAt)
	})
}

// webhookTarget returns a webhook's secret and whether it still wants
// deliveries; a deleted webhook does not.
func webhookTarget(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (secret string, active bool, err error) {
	err = tx.QueryRow(ctx, `SELECT secret, active FROM webhooks WHERE id = $1`, id).Scan(&secret, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("webhook secret: %w", err)
	}
	return secret, active, nil
}

// Notification is one in-app notification.
type Notification struct {
	ID           uuid.UUID  `json:"id"`
	Type         string     `json:"type"`
	TicketNumber *int64     `json:"ticket_number"`
	Title        string     `json:"title"`
	Summary      string     `json:"summary"`
	CreatedAt    time.Time  `json:"created_at"`
	ReadAt       *time.Time `json:"read_at"`
}

func listNotifications(ctx context.Context, tx tenancy.Tx, member uuid.UUID, unreadOnly bool, before position, limit int) ([]Notification, error) {
	rows, err := tx.Query(ctx, `SELECT id, type, ticket_number, title, summary, created_at, read_at FROM notifications
		WHERE member_id = $1 AND (NOT $2 OR read_at IS NULL) AND (created_at, id) < ($3, $4)
		ORDER BY created_at DESC, id DESC LIMIT $5`, member, unreadOnly, before.At, before.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	items, err := pgx.AppendRows(make([]Notification, 0, limit), rows, func(row pgx.CollectableRow) (Notification, error) {
		var n Notification
		return n, row.Scan(&n.ID, &n.Type, &n.TicketNumber, &n.Title, &n.Summary, &n.CreatedAt, &n.ReadAt)
	})
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return items, nil
}

func markNotificationRead(ctx context.Context, tx tenancy.Tx, member, id uuid.UUID) error {
	tag, err := tx.Exec(ctx, `UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND member_id = $2`, id, member)
	if err != nil {
		return fmt.Errorf("mark notification read: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errs.Errorf(errs.ErrNotFound, "notification not found")
	}
	return nil
}

func markAllNotificationsRead(ctx context.Context, tx tenancy.Tx, member uuid.UUID) error {
	if _, err := tx.Exec(ctx, `UPDATE notifications SET read_at = now() WHERE member_id = $1 AND read_at IS NULL`, member); err != nil {
		return fmt.Errorf("mark notifications read: %w", err)
	}
	return nil
}

func insertWebhook(ctx context.Context, tx tenancy.Tx, hook *Webhook, createdBy uuid.UUID) error {
	err := tx.QueryRow(ctx, `INSERT INTO webhooks (url, events, secret, created_by) VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
		hook.URL, hook.Events, hook.Secret, createdBy).Scan(&hook.ID, &hook.CreatedAt)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return nil
}

func deactivateWebhook(ctx context.Context, tx tenancy.Tx, id uuid.UUID) error {
	tag, err := tx.Exec(ctx, `UPDATE webhooks SET active = false WHERE id = $1 AND active`, id)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errs.Errorf(errs.ErrNotFound, "webhook not found")
	}
	return nil
}

func listDeliveries(ctx context.Context, tx tenancy.Tx, status string, before position, limit int) ([]*Delivery, error) {
	rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE ($1 = '' OR status = $1) AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`,
		status, before.At, before.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	items := []*Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, d)
	}
	return items, rows.Err()
}

// startRound makes a delivery pending again, in a new round of attempts.
func startRound(ctx context.Context, tx tenancy.Tx, p pendingDelivery) error {
	if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'pending', round = $2, attempts = 0, next_attempt_at = now(),
		updated_at = now() WHERE id = $1`, p.ID, p.Round); err != nil {
		return fmt.Errorf("retry delivery: %w", err)
	}
	return nil
}
