package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
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
