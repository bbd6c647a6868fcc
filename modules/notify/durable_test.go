package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/tenancy"
)

// webhookID returns the id of the webhook setup registered.
func (e *env) webhookID(t *testing.T) string {
	t.Helper()
	hooks := e.call(t, e.owner, "GET", "/webhooks", nil).Items()
	if len(hooks) != 1 {
		t.Fatalf("webhooks: %v", hooks)
	}
	return hooks[0]["id"].(string)
}

// TestDeliveryWithoutJobIsReconciled: a pending delivery whose job was never
// inserted (the window between the consumer's commit and its job insert,
// where a kill -9 or a database blip used to strand it for good) is found
// by the periodic reconciliation and sent, once.
func TestDeliveryWithoutJobIsReconciled(t *testing.T) {
	t.Parallel()
	e := setup(t, "reconciled", func(c *api.Config) { c.Notify.ReconcileEvery = 300 * time.Millisecond })
	hookID := e.webhookID(t)
	ctx := context.Background()
	tn, err := e.s.Reg.Lookup(ctx, e.slug)
	if err != nil {
		t.Fatal(err)
	}
	eventID := uuid.New()
	var deliveryID uuid.UUID
	// Written as the consumer writes it, with no River job.
	err = e.s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO deliveries (channel, target, webhook_id, event_id, event_type, payload, next_attempt_at, occurred_at)
			VALUES ('webhook', $1, $2, $3, 'ticket.created', '{"stranded": true}', now() - interval '1 minute', now()) RETURNING id`,
			e.hook.URL+"/in", hookID, eventID).Scan(&deliveryID)
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apitest.Eventually(t, 30*time.Second, "the stranded delivery sent", func() bool {
		d := e.deliveries(t, "&status=sent")
		return len(d) == 1 && d[0]["id"] == deliveryID.String()
	})
	t.Logf("stranded delivery reconciled and sent after %s", time.Since(start))
	if counts := e.hook.Deliveries(); counts[deliveryID.String()] != 1 || len(counts) != 1 {
		t.Fatalf("webhook receipts by delivery id: %v", counts)
	}
	// Sent, it is not due any more: reconciling again schedules nothing.
	if n, err := e.s.App.Notify.Reconcile(ctx, tn.DatabaseID); err != nil || n != 0 {
		t.Fatalf("reconcile after sending: %d new jobs, %v", n, err)
	}
}

// TestDeactivatedWebhookDeliveryIsCancelled (issue 9.10): a delivery
// scheduled for a webhook that is deactivated before it succeeds is not sent
// but ends cancelled.
func TestDeactivatedWebhookDeliveryIsCancelled(t *testing.T) {
	t.Parallel()
	e := setup(t, "cancelled", func(c *api.Config) {
		c.Notify.MaxAttempts, c.Notify.RetryBase, c.Notify.RetryMax = 6, 500*time.Millisecond, time.Second
	})
	hookID := e.webhookID(t)
	e.hook.SetStatus(500)
	if r := e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "hook me", "body": "x"}); r.Status != 201 {
		t.Fatal(r)
	}
	apitest.Eventually(t, 20*time.Second, "a failed webhook delivery", func() bool {
		return len(e.deliveries(t, "&status=failed")) == 1
	})
	if r := e.call(t, e.owner, "DELETE", "/webhooks/"+hookID, nil); r.Status != 204 {
		t.Fatalf("delete webhook: %s", r)
	}
	e.hook.SetStatus(200)
	var d []map[string]any
	apitest.Eventually(t, 20*time.Second, "the delivery cancelled", func() bool {
		d = e.deliveries(t, "&status=cancelled")
		return len(d) == 1
	})
	if counts, _ := e.hook.Counts(); len(counts) != 0 {
		t.Fatalf("a deactivated webhook received %v", counts)
	}
	if d[0]["channel"] != "webhook" || d[0]["last_error"] == nil {
		t.Fatalf("cancelled delivery: %v", d[0])
	}
}

// TestRedeliveredEventSchedulesStrandedDelivery: the crash window of issue
// 21.2, replayed with the real consumer. The handler's transaction committed
// (event marked processed, delivery pending) and the process died before
// inserting the job, so the Kafka offset was not committed: the event comes
// again, is "already processed", and must still schedule what is pending.
// Reconciliation is out of the way (hourly, and the row is not due for an
// hour), so only the redelivery can schedule it.
func TestRedeliveredEventSchedulesStrandedDelivery(t *testing.T) {
	t.Parallel()
	e := setup(t, "redelivered", func(c *api.Config) { c.Notify.ReconcileEvery = time.Hour })
	hookID := e.webhookID(t)
	e.ev.StopConsumer(notify.ConsumerGroup)
	if r := e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "crash window", "body": "x"}); r.Status != 201 {
		t.Fatal(r)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, e.s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var eventID uuid.UUID
	apitest.Eventually(t, 20*time.Second, "the ticket.created event in the outbox", func() bool {
		return admin.QueryRow(ctx, `SELECT event_id FROM infra.outbox WHERE type = 'ticket.created' ORDER BY id DESC LIMIT 1`).Scan(&eventID) == nil
	})
	tn, err := e.s.Reg.Lookup(ctx, e.slug)
	if err != nil {
		t.Fatal(err)
	}
	var deliveryID uuid.UUID
	err = e.s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		if _, err := outbox.MarkProcessed(ctx, tx, notify.ConsumerGroup, eventID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO deliveries (channel, target, webhook_id, event_id, event_type, payload, next_attempt_at, occurred_at)
			VALUES ('webhook', $1, $2, $3, 'ticket.created', '{"crash": "window"}', now() + interval '1 hour', now()) RETURNING id`,
			e.hook.URL+"/in", hookID, eventID).Scan(&deliveryID)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ev.StartConsumer(notify.ConsumerGroup)
	apitest.Eventually(t, 30*time.Second, "the stranded delivery sent on redelivery", func() bool {
		return e.hook.Deliveries()[deliveryID.String()] == 1
	})
	if d := e.deliveries(t, "&status=sent"); len(d) != 1 || d[0]["id"] != deliveryID.String() {
		t.Fatalf("sent deliveries: %v (the redelivery must not fan out again)", d)
	}
}
