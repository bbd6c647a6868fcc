package api_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/modules/search"
)

// TestConsumerDyingMidBatchKeepsExactlyOnce: each consumer group applies a
// batch in one transaction per tenant. A member that dies after some of a
// batch's tenant transactions committed, before committing the batch's
// offsets, leaves the whole batch to be delivered again; the next member
// must skip what was committed (processed-event keys) and apply the rest, so
// every event counts once. Real embedded broker over TCP, real PostgreSQL.
// Reports' backlog counters are the sharp check: a status change applied
// twice moves them twice (the other effects are also idempotent by key).
func TestConsumerDyingMidBatchKeepsExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := apitest.New(t, nil)
	e := s.StartEvents(t)
	groups := []string{reports.ConsumerGroup, search.ConsumerGroup, notify.ConsumerGroup}
	for _, g := range groups {
		e.StopConsumer(g) // the test runs its own members
	}
	const perTenant = 12
	slugs := []string{"crash-a", "crash-b", "crash-c"}
	schemas := map[string]string{}
	for _, slug := range slugs {
		owner := s.Signup(t, slug)
		tn, err := s.Reg.Lookup(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		schemas[slug] = pgx.Identifier{tn.Schema}.Sanitize()
		for i := range perTenant {
			r := s.Call(t, "POST", "/t/"+slug+"/api/v1/tickets", owner, map[string]any{"title": fmt.Sprintf("Crash %d", i), "body": "b"})
			if r.Status != 201 {
				t.Fatalf("create: %s", r)
			}
			// Every other ticket is taken up: a status change moves the
			// backlog counters, which an event applied twice would skew.
			if i%2 == 1 {
				r = s.Call(t, "PATCH", fmt.Sprintf("/t/%s/api/v1/tickets/%v", slug, r.JSON["number"]), owner, map[string]any{"status": "in_progress"})
				if r.Status != 200 {
					t.Fatalf("patch: %s", r)
				}
			}
		}
	}
	admin := s.Admin(t)
	count := func(q string) int {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	apitest.Eventually(t, 30*time.Second, "outbox published", func() bool {
		return count(`SELECT count(*) FROM infra.outbox WHERE published_at IS NULL`) == 0
	})
	total := (perTenant + perTenant/2) * len(slugs)
	processed := func(group string) int {
		n := 0
		for _, schema := range schemas {
			n += count(`SELECT count(*) FROM ` + schema + `.processed_events WHERE consumer = '` + group + `'`)
		}
		return n
	}
	// effects count, per tenant, what each group's events produced.
	type effect struct {
		query string
		want  int
	}
	effects := map[string][]effect{
		reports.ConsumerGroup: {
			{`SELECT coalesce(sum(created), 0) FROM %s.report_daily`, perTenant},
			{`SELECT coalesce(sum(count), 0) FROM %s.report_backlog WHERE status = 'open'`, perTenant / 2},
			{`SELECT coalesce(sum(count), 0) FROM %s.report_backlog WHERE status = 'in_progress'`, perTenant / 2},
		},
		search.ConsumerGroup: {{`SELECT count(*) FROM %s.search_docs`, perTenant}},
		notify.ConsumerGroup: {{`SELECT count(*) FROM %s.deliveries WHERE event_type = 'ticket.created'`, perTenant}},
	}
	handlers := map[string]struct {
		one   bus.Handler
		batch bus.BatchHandler
	}{
		reports.ConsumerGroup: {s.App.Reports.HandleEvent, s.App.Reports.HandleBatch},
		search.ConsumerGroup:  {s.App.Search.HandleEvent, s.App.Search.HandleBatch},
		notify.ConsumerGroup:  {s.App.Notify.HandleEvent, s.App.Notify.HandleBatch},
	}
	member := func(ctx context.Context, group string, batch bus.BatchHandler) (done chan error) {
		c, err := bus.NewBatchConsumer(bus.ConsumerConfig{Brokers: e.Brokers(), Group: group, Backoff: 20 * time.Millisecond},
			bus.NewConsumerMetrics(prometheus.NewRegistry()), handlers[group].one, batch)
		if err != nil {
			t.Fatal(err)
		}
		done = make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return done
	}
	for _, g := range groups {
		t.Run(g, func(t *testing.T) {
			// The first member applies the first half of its first batch
			// of four or more events, which commits the transactions of
			// the tenants in that half, and dies before the batch's
			// offsets are committed. Smaller batches before it are handled
			// and committed normally.
			dieCtx, die := context.WithCancel(ctx)
			defer die()
			var (
				once     sync.Once
				applied  atomic.Int64
				batchLen atomic.Int64
			)
			errKilled := errors.New("killed mid-batch")
			crashing := func(ctx context.Context, ms []kafka.Message) error {
				if len(ms) < 4 || batchLen.Load() > 0 {
					if batchLen.Load() > 0 {
						return errKilled // dead already: nothing more is applied
					}
					return handlers[g].batch(ctx, ms)
				}
				var err error
				once.Do(func() {
					batchLen.Store(int64(len(ms)))
					half := ms[:len(ms)/2]
					err = handlers[g].batch(ctx, half)
					applied.Store(int64(len(half)))
					die()
				})
				if err != nil {
					return err
				}
				return errKilled
			}
			if err := <-member(dieCtx, g, crashing); err != nil {
				t.Fatalf("crashing member: %v", err)
			}
			if batchLen.Load() == 0 {
				t.Fatal("the member never got a batch of four or more events: batching did not batch")
			}
			before := processed(g)
			if before == 0 || before >= total {
				t.Fatalf("after the crash %d of %d events are processed; want part of them (batch of %d, %d applied)",
					before, total, batchLen.Load(), applied.Load())
			}
			t.Logf("crashed after applying %d of a batch of %d; %d of %d events processed", applied.Load(), batchLen.Load(), before, total)

			// A new member gets the uncommitted batch again and finishes.
			runCtx, stop := context.WithCancel(ctx)
			done := member(runCtx, g, handlers[g].batch)
			apitest.Eventually(t, 30*time.Second, g+" processed every event", func() bool { return processed(g) == total })
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			for slug, schema := range schemas {
				for _, ef := range effects[g] {
					if n := count(fmt.Sprintf(ef.query, schema)); n != ef.want {
						t.Errorf("%s of %s: %s = %d, want %d (each event applied exactly once)", g, slug, ef.query, n, ef.want)
					}
				}
			}
		})
	}
}
