package api_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy/move"
)

// BenchmarkMoveFreeze moves a tenant holding 100,000 tickets and 500,000
// timeline events shared → dedicated → shared while a client keeps creating
// tickets, and reports each write freeze and the longest gap between two
// acknowledged writes as the client saw it.
func BenchmarkMoveFreeze(b *testing.B) {
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
		 FROM generate_series(1, 100000) i`,
		`UPDATE ` + tn.Schema + `.ticket_counter SET last_number = 100000`,
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
	b.Logf("seeded 100,000 tickets and 500,000 events in %s", time.Since(seed).Round(time.Millisecond))

	for b.Loop() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		w := &writer{}
		wg.Go(func() { w.run(b, s, "heavy", owner, stop) })
		time.Sleep(200 * time.Millisecond)
		var freezes []int
		for _, db := range []string{"dedicated-heavy", "main"} {
			start := time.Now()
			m, err := move.New(s.Reg).Start(ctx, "heavy", db, move.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("move to %s: %s in all, write freeze %d ms", db, time.Since(start).Round(time.Millisecond), *m.FreezeMS)
			freezes = append(freezes, *m.FreezeMS)
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		wg.Wait()
		if len(w.fails) > 0 {
			b.Fatalf("%d writes failed: %.300v", len(w.fails), w.fails)
		}
		b.ReportMetric(float64(freezes[0]), "freeze-out-ms")
		b.ReportMetric(float64(freezes[1]), "freeze-back-ms")
		b.ReportMetric(float64(w.maxGap.Milliseconds()), "max-write-gap-ms")
		b.ReportMetric(float64(len(w.numbers)), "writes")
	}
}
