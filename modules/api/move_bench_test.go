package api_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy/move"
)

// BenchmarkMoveFreeze moves a tenant holding 100,000 tickets and 500,000
// timeline events (PATCHDESK_BENCH_MOVE_TICKETS sets another number of
// tickets, with five events each: 1000000 is issue 19's enterprise tenant)
// shared → dedicated → shared while a client keeps creating tickets, and
// reports each write freeze, each whole move, the verification before the
// freeze, and the longest gap between two acknowledged writes as the client
// saw it.
func BenchmarkMoveFreeze(b *testing.B) {
	tickets := 100_000
	if v := os.Getenv("PATCHDESK_BENCH_MOVE_TICKETS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PATCHDESK_BENCH_MOVE_TICKETS=%q: want a positive number", v)
		}
		tickets = n
	}
	s := apitest.New(b, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	s.StartEvents(b) // the relay keeps the outbox drained, as in production
	owner := s.Signup(b, "heavy")
	dedicatedDatabase(b, s, "dedicated-heavy")
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, "heavy")
	if err != nil {
		b.Fatal(err)
	}
	conn := s.Admin(b)
	seed := time.Now()
	for _, q := range []string{
		`INSERT INTO ` + tn.Schema + `.tickets (number, title, body, status, priority, requester_email, tags, created_at, updated_at)
		 SELECT i, 'Seeded ticket ' || i, repeat('Body text of a realistic length. ', 8),
			(ARRAY['open','in_progress','pending','resolved','closed'])[1 + i % 5], 'normal', 'c' || (i % 1000) || '@x.test',
			ARRAY['seed'], now() - make_interval(secs => i), now() - make_interval(secs => i)
		 FROM generate_series(1, ` + strconv.Itoa(tickets) + `) i`,
		`UPDATE ` + tn.Schema + `.ticket_counter SET last_number = ` + strconv.Itoa(tickets),
		`INSERT INTO ` + tn.Schema + `.ticket_events (event_id, ticket_id, type, data, created_at)
		 SELECT gen_random_uuid(), t.id, (ARRAY['created','status_changed','assigned','priority_changed','commented'])[1 + g % 5],
			jsonb_build_object('before', 'open', 'after', 'in_progress'), t.created_at
		 FROM ` + tn.Schema + `.tickets t, generate_series(0, 4) g`,
		`ANALYZE ` + tn.Schema + `.tickets, ` + tn.Schema + `.ticket_events`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d tickets and %d events in %s", tickets, 5*tickets, time.Since(seed).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "BenchmarkMoveFreeze: seeded %d tickets and %d events in %s\n", tickets, 5*tickets, time.Since(seed).Round(time.Millisecond))

	for b.Loop() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		w := &writer{}
		wg.Go(func() { w.run(b, s, "heavy", owner, stop) })
		time.Sleep(200 * time.Millisecond)
		var freezes []int
		var took []time.Duration
		var baselines, pauses []int64
		for _, db := range []string{"dedicated-heavy", "main"} {
			start := time.Now()
			m, err := move.New(s.Reg).Start(ctx, "heavy", db, move.Options{})
			if err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			b.Logf("move to %s: %s in all, write freeze %d ms; phases (ms) %v", db, time.Since(start).Round(time.Millisecond), *m.FreezeMS, m.Phases)
			freezes = append(freezes, *m.FreezeMS)
			w.mu.Lock()
			gap, writes := w.maxGap, len(w.numbers)
			w.mu.Unlock()
			// Also at once on stderr: a long run's figures survive its interruption.
			fmt.Fprintf(os.Stderr, "BenchmarkMoveFreeze: move to %s: %s in all, freeze %d ms, longest write gap so far %s, %d writes, phases (ms) %v\n",
				db, time.Since(start).Round(time.Millisecond), *m.FreezeMS, gap, writes, m.Phases)
			baselines = append(baselines, m.Phases["verify baseline"])
			pauses = append(pauses, m.Phases["change log pause"])
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if len(w.fails) > 0 {
			b.Fatalf("%d writes failed: %.300v", len(w.fails), w.fails)
		}
		b.ReportMetric(float64(freezes[0]), "freeze-out-ms")
		b.ReportMetric(float64(freezes[1]), "freeze-back-ms")
		b.ReportMetric(took[0].Seconds(), "move-out-s")
		b.ReportMetric(took[1].Seconds(), "move-back-s")
		b.ReportMetric(float64(baselines[0]+baselines[1]), "verify-before-freeze-ms")
		b.ReportMetric(float64(max(pauses[0], pauses[1])), "change-log-pause-ms")
		b.ReportMetric(float64(w.maxGap.Milliseconds()), "max-write-gap-ms")
		b.ReportMetric(float64(len(w.numbers)), "writes")
	}
}
