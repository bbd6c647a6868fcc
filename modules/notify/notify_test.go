package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/notify/notifytest"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/tenancy"
)

const hookSecret = "a webhook secret of some length"

type env struct {
	s      *apitest.Server
	ev     *apitest.Events
	smtp   *notifytest.SMTP
	hook   *notifytest.Hook
	owner  string
	slug   string
	agent  apitest.Member
	client apitest.Member
}

func setup(t *testing.T, slug string, cfg func(*api.Config)) *env {
	t.Helper()
	sink := notifytest.StartSMTP(t)
	s := apitest.New(t, func(c *api.Config) {
		c.Notify.SMTPURL = "smtp://" + sink.Addr
		if cfg != nil {
			cfg(c)
		}
	})
	e := &env{s: s, smtp: sink, hook: notifytest.StartHook(t, hookSecret), slug: slug}
	e.ev = s.StartEvents(t)
	e.owner = s.Signup(t, slug)
	e.agent = s.AddMember(t, slug, e.owner, "agent")
	e.client = s.AddMember(t, slug, e.owner, "customer")
	r := e.call(t, e.owner, "POST", "/webhooks", map[string]any{"url": e.hook.URL + "/in", "events": []string{"*"}, "secret": hookSecret})
	if r.Status != 201 {
		t.Fatalf("register webhook: %s", r)
	}
	return e
}

func (e *env) call(t *testing.T, token, method, path string, body any) apitest.Resp {
	t.Helper()
	return e.s.Call(t, method, "/t/"+e.slug+"/api/v1"+path, token, body)
}

// waitAllSent waits until n deliveries exist and all are sent.
func (e *env) waitAllSent(t *testing.T, n int) {
	t.Helper()
	apitest.Eventually(t, 30*time.Second, fmt.Sprintf("%d deliveries sent", n), func() bool {
		all := e.deliveries(t, "")
		for _, d := range all {
			if d["status"] != "sent" {
				return false
			}
		}
		return len(all) == n
	})
}

// processed counts the events the notify consumer recorded as processed.
func (e *env) processed(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	tn, err := e.s.Reg.Lookup(ctx, e.slug)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = e.s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE consumer = $1`, notify.ConsumerGroup).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) deliveries(t *testing.T, query string) []map[string]any {
	t.Helper()
	return e.call(t, e.owner, "GET", "/deliveries?limit=100"+query, nil).Items()
}

func TestTicketReachesWebhookEmailAndInApp(t *testing.T) {
	t.Parallel()
	e := setup(t, "notified", nil)
	tk := e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "Printer on fire", "body": "3rd floor", "requester_email": e.client.Email})
	if tk.Status != 201 {
		t.Fatal(tk)
	}
	n := fmt.Sprint(tk.JSON["number"])
	apitest.Eventually(t, 20*time.Second, "webhook for ticket.created", func() bool {
		counts, _ := e.hook.Counts()
		return len(counts) == 1
	})
	counts, invalid := e.hook.Counts()
	if invalid != 0 {
		t.Fatalf("%d webhook deliveries had a bad signature", invalid)
	}
	for id := range counts {
		var body struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			Data    struct {
				Ticket struct{ Title, Body, Priority string } `json:"ticket"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.hook.Body(id), &body); err != nil || body.EventID != id || body.Type != "ticket.created" ||
			body.Data.Ticket.Title != "Printer on fire" || body.Data.Ticket.Body != "3rd floor" || body.Data.Ticket.Priority != "normal" {
			t.Errorf("webhook body (%v): %s", err, e.hook.Body(id))
		}
	}
	apitest.Eventually(t, 20*time.Second, "ticket-received email", func() bool { return len(e.smtp.To(e.client.Email)) == 1 })
	received := e.smtp.To(e.client.Email)[0].Data
	for _, want := range []string{"Subject: [#" + n + "] We received your request: Printer on fire", "Message-ID: <ticket-",
		"Reply-To: reply+notified." + n + "@", "Content-Type: text/plain; charset=utf-8", "Auto-Submitted: auto-generated"} {
		if !strings.Contains(received, want) {
			t.Errorf("received email lacks %q:\n%s", want, received)
		}
	}
	// Assigning emails the assignee; a public reply emails the requester, threaded.
	e.call(t, e.owner, "PATCH", "/tickets/"+n, map[string]any{"assignee_id": e.agent.ID})
	e.call(t, e.agent.Token, "POST", "/tickets/"+n+"/comments", map[string]any{"body": "We are on it."})
	e.call(t, e.agent.Token, "POST", "/tickets/"+n+"/comments", map[string]any{"body": "secret note", "internal": true})
	apitest.Eventually(t, 20*time.Second, "assigned and reply emails", func() bool {
		return len(e.smtp.To(e.agent.Email)) == 1 && len(e.smtp.To(e.client.Email)) == 2
	})
	if m := e.smtp.To(e.agent.Email)[0].Data; !strings.Contains(m, "Assigned to you") {
		t.Errorf("assigned email: %s", m)
	}
	var reply string
	for _, m := range e.smtp.To(e.client.Email) {
		if strings.Contains(m.Data, "We are on it.") {
			reply = m.Data
		}
	}
	if !strings.Contains(reply, "In-Reply-To: <ticket-") || !strings.Contains(reply, "References: <ticket-") {
		t.Errorf("reply does not thread:\n%s", reply)
	}
	for _, m := range e.smtp.Messages() {
		if strings.Contains(m.Data, "secret note") {
			t.Errorf("an internal note was emailed: %s", m.Data)
		}
	}
	// In-app: the assignee hears of the reply? No: they wrote it. The customer does.
	apitest.Eventually(t, 20*time.Second, "in-app notifications", func() bool {
		return len(e.call(t, e.client.Token, "GET", "/notifications", nil).Items()) >= 3
	})
	for _, it := range e.call(t, e.client.Token, "GET", "/notifications", nil).Items() {
		if strings.Contains(fmt.Sprint(it["summary"]), "secret note") {
			t.Errorf("customer notified of an internal note: %v", it)
		}
	}
	mine := e.call(t, e.agent.Token, "GET", "/notifications", nil).Items()
	for _, it := range mine {
		if strings.Contains(fmt.Sprint(it["summary"]), "We are on it") {
			t.Errorf("the actor was notified of their own reply: %v", it)
		}
	}
	first := e.call(t, e.client.Token, "GET", "/notifications?unread=true", nil).Items()[0]["id"].(string)
	if r := e.call(t, e.client.Token, "POST", "/notifications/"+first+"/read", nil); r.Status != 204 {
		t.Errorf("mark read: %s", r)
	}
	if r := e.call(t, e.agent.Token, "POST", "/notifications/"+first+"/read", nil); r.Status != 404 {
		t.Errorf("marking someone else's notification: %s", r)
	}
	// Every event of the script (created, assigned, two comments) reaches the
	// webhook, and every email and webhook delivery ends sent.
	apitest.Eventually(t, 20*time.Second, "every delivery sent", func() bool {
		all := e.deliveries(t, "")
		for _, d := range all {
			if d["status"] != "sent" {
				return false
			}
		}
		return len(all) == 4+3 // webhooks: created, assigned, reply, note; emails: received, assigned, reply
	})
	if r := e.call(t, e.agent.Token, "GET", "/deliveries", nil); !r.IsProblem(403) {
		t.Errorf("agent listing deliveries: %s", r)
	}
	if r := e.call(t, e.owner, "POST", "/webhooks", map[string]any{"url": "ftp://x", "events": []string{"*"}}); !r.IsProblem(422) {
		t.Errorf("bad webhook url: %s", r)
	}
}

func TestBrokerDownLosesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, "brokerdown", nil)
	e.ev.StopBroker()
	const n = 50
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.call(t, e.agent.Token, "POST", "/tickets", map[string]any{"title": fmt.Sprintf("while down %d", i), "body": "x"})
			if r.Status != 201 {
				t.Errorf("create while the broker is down: %s", r)
			}
		})
	}
	wg.Wait()
	t.Logf("%d tickets created with the broker down in %s", n, time.Since(start))
	if got := len(e.deliveries(t, "")); got != 0 {
		t.Fatalf("%d deliveries appeared while the broker was down", got)
	}
	e.ev.StartBroker()
	apitest.Eventually(t, 60*time.Second, "every event at the webhook", func() bool {
		counts, _ := e.hook.Counts()
		return len(counts) == n
	})
	// Every delivery (webhook, and the email to the requesting agent) recorded
	// sent: any repeat would have happened before that.
	e.waitAllSent(t, 2*n)
	counts, invalid := e.hook.Counts()
	for id, c := range counts {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
	if len(counts) != n || invalid != 0 {
		t.Fatalf("%d distinct events delivered (want %d), %d with bad signatures", len(counts), n, invalid)
	}
}

func TestRelayKilledMidBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, "relaykill", nil)
	e.ev.StopRelay()
	const n = 20
	for i := range n {
		e.call(t, e.agent.Token, "POST", "/tickets", map[string]any{"title": fmt.Sprintf("t%d", i), "body": "x"})
	}
	// This relay publishes the batch, then dies before marking it published.
	crashed := make(chan struct{})
	var once sync.Once
	e.ev.StartRelay(outbox.RelayConfig{AfterPublish: func() error {
		once.Do(func() { close(crashed) })
		return fmt.Errorf("killed after publishing")
	}})
	<-crashed
	e.ev.StopRelay()
	e.ev.StartRelay(outbox.RelayConfig{})
	apitest.Eventually(t, 30*time.Second, "every event at the webhook", func() bool {
		counts, _ := e.hook.Counts()
		return len(counts) == n
	})
	e.waitAllSent(t, 2*n)
	counts, _ := e.hook.Counts()
	for id, c := range counts {
		if c != 1 {
			t.Errorf("event %s delivered %d times despite being published twice", id, c)
		}
	}
}

func TestFailedDeliveriesRetryDieAndResend(t *testing.T) {
	t.Parallel()
	e := setup(t, "retries", func(c *api.Config) {
		c.Notify.MaxAttempts, c.Notify.RetryBase, c.Notify.RetryMax = 4, 300*time.Millisecond, time.Second
	})
	// SMTP down: the email fails with an error, is retried, and is sent once SMTP is back.
	e.smtp.Stop()
	e.hook.SetStatus(500)
	e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "mail me", "body": "x", "requester_email": e.client.Email})
	apitest.Eventually(t, 20*time.Second, "a failed email delivery", func() bool {
		for _, d := range e.deliveries(t, "&status=failed") {
			if d["channel"] == "email" && d["last_error"] != nil && d["next_attempt_at"] != nil {
				return true
			}
		}
		return false
	})
	e.smtp.Restart(t)
	apitest.Eventually(t, 20*time.Second, "the email sent after SMTP returned", func() bool {
		return len(e.smtp.To(e.client.Email)) == 1
	})
	var hook map[string]any
	apitest.Eventually(t, 30*time.Second, "the webhook delivery dead", func() bool {
		for _, d := range e.deliveries(t, "&status=dead") {
			if d["channel"] == "webhook" {
				hook = d
				return true
			}
		}
		return false
	})
	if hook["attempts"] != float64(4) || !strings.Contains(fmt.Sprint(hook["last_error"]), "HTTP 500") {
		t.Fatalf("dead webhook delivery: %v", hook)
	}
	// The row is marked sent just after the SMTP server took the message.
	var email []map[string]any
	apitest.Eventually(t, 10*time.Second, "the email delivery marked sent", func() bool {
		email = e.deliveries(t, "&status=sent")
		return len(email) == 1
	})
	if email[0]["channel"] != "email" || email[0]["attempts"].(float64) < 2 {
		t.Fatalf("email delivery after retries: %v", email)
	}
	// A manual retry sends it once the target is healthy.
	e.hook.SetStatus(200)
	if r := e.call(t, e.owner, "POST", "/deliveries/"+hook["id"].(string)+"/retry", nil); r.Status != 202 {
		t.Fatalf("retry: %s", r)
	}
	apitest.Eventually(t, 20*time.Second, "the retried webhook", func() bool {
		counts, _ := e.hook.Counts()
		return len(counts) == 1
	})
	if r := e.call(t, e.owner, "POST", "/deliveries/"+hook["id"].(string)+"/retry", nil); !r.IsProblem(409) {
		apitest.Eventually(t, 10*time.Second, "sent status", func() bool {
			return len(e.deliveries(t, "&status=sent")) == 2
		})
	}
}

func TestSuspendedTenantHasNoSideEffects(t *testing.T) {
	t.Parallel()
	e := setup(t, "suspendy", nil)
	e.ev.StopRelay()
	r := e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "before suspension", "body": "x", "requester_email": e.client.Email})
	if r.Status != 201 {
		t.Fatal(r)
	}
	if _, err := e.s.Reg.SetStatus(context.Background(), "suspendy", tenancy.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if r := e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "x", "body": "y"}); !r.IsProblem(403) {
		t.Fatalf("suspended tenant accepted a write: %s", r)
	}
	e.ev.StartRelay(outbox.RelayConfig{})
	// The event is relayed and consumed (notify records it processed), but
	// nothing is sent for a suspended tenant.
	apitest.Eventually(t, 30*time.Second, "the event processed by notify", func() bool {
		return e.processed(t) == 1
	})
	if counts, _ := e.hook.Counts(); len(counts) != 0 {
		t.Fatalf("webhook delivered for a suspended tenant: %v", counts)
	}
	if m := e.smtp.To(e.client.Email); len(m) != 0 {
		t.Fatalf("email sent for a suspended tenant: %d", len(m))
	}
	if _, err := e.s.Reg.SetStatus(context.Background(), "suspendy", tenancy.StatusActive); err != nil {
		t.Fatal(err)
	}
	if d := e.deliveries(t, ""); len(d) != 0 {
		t.Fatalf("deliveries recorded while suspended: %v", d)
	}
	// Resumed: new changes have side effects again.
	e.call(t, e.owner, "POST", "/tickets", map[string]any{"title": "after resume", "body": "x"})
	apitest.Eventually(t, 20*time.Second, "webhook after resume", func() bool {
		counts, _ := e.hook.Counts()
		return len(counts) == 1
	})
}
