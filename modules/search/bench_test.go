package search_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

// seedDocs fills a tenant's search read model with n tickets of random text:
// each ticket draws a few common helpdesk words and, with a skewed (Zipf-like)
// distribution, words from a vocabulary of 5,000 others, as real text does.
func seedDocs(b *testing.B, s *apitest.Server, slug string, n int) {
	b.Helper()
	ctx := context.Background()
	t, err := s.Reg.Resolve(ctx, slug)
	if err != nil {
		b.Fatal(err)
	}
	err = s.Reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		for _, q := range []string{
			// The word expressions refer to g so they are drawn per word, not once.
			`CREATE TEMP TABLE gen ON COMMIT DROP AS
			 SELECT i,
				(SELECT string_agg(CASE WHEN random() < 0.3 THEN (` + commonWords + `)[1 + floor(random() * 30)::int + 0 * g]
				                   ELSE 'term' || floor(5000 * power(random(), 3))::int END, ' ')
				 FROM generate_series(1, 4 + (i % 2)) g WHERE i > 0) AS title,
				(SELECT string_agg(CASE WHEN random() < 0.2 THEN (` + commonWords + `)[1 + floor(random() * 30)::int + 0 * g]
				                   ELSE 'term' || floor(5000 * power(random(), 3))::int END, ' ')
				 FROM generate_series(1, 40) g WHERE i > 0) AS body
			 FROM generate_series(1, $1) i`,
			`INSERT INTO search_docs (ticket_id, number, title, status, requester_email, tags_text, body, public_text, internal_text, ticket_version)
			 SELECT gen_random_uuid(), i, title, (ARRAY['open','in_progress','pending','resolved','closed'])[1 + i % 5],
				'customer' || (i % 500) || '@example.com', '', body, 'Thanks, looking into it.', 'Escalated.', 1
			 FROM gen`,
		} {
			args := []any{}
			if strings.Contains(q, "$1") {
				args = append(args, n)
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("%.60s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Statistics as autovacuum would keep them; only the owner may ANALYZE.
	conn := s.Admin(b)
	if _, err := conn.Exec(ctx, `ANALYZE `+t.Schema+`.search_docs`); err != nil {
		b.Fatal(err)
	}
}

const commonWords = `ARRAY['printer','network','email','password','laptop','monitor','invoice','refund','login',
	'server','backup','license','keyboard','wifi','vpn','calendar','meeting','phone','office','shipping','order',
	'account','billing','upgrade','crash','slow','error','broken','install','access']`

// BenchmarkSearch100k measures GET /search over HTTP with 100,000 tickets in
// one tenant, for a staff member and for a customer; reports p50/p95.
func BenchmarkSearch100k(b *testing.B) {
	s := apitest.New(b, nil)
	owner := s.Signup(b, "bigsearch")
	customer := s.AddMember(b, "bigsearch", owner, "customer")
	seedDocs(b, s, "bigsearch", 100_000)
	queries := []string{"printer", "printer -wifi", `"vpn error"`, "refund or invoice", "passw", "vpn login error",
		"term42", "term7 term300", "term1 -printer", "term123 or term4567", "term99", "zzzz nothing"}
	var lat []time.Duration
	per := map[string][]time.Duration{}
	defer func() {
		for q, l := range per {
			slices.Sort(l)
			b.Logf("%-22q p50 %6.1f ms  max %6.1f ms", q, float64(l[len(l)/2].Microseconds())/1000, float64(l[len(l)-1].Microseconds())/1000)
		}
	}()
	i := 0
	for b.Loop() {
		token := owner
		if i%4 == 3 {
			token = customer.Token
		}
		q := queries[i%len(queries)]
		start := time.Now()
		r := s.Call(b, "GET", "/t/bigsearch/api/v1/search?q="+url.QueryEscape(q), token, nil)
		lat = append(lat, time.Since(start))
		per[q] = append(per[q], time.Since(start))
		if r.Status != 200 {
			b.Fatal(r)
		}
		i++
	}
	report(b, lat)
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}

// BenchmarkIndexLag drives 200 ticket writes/s (creates and comments) through
// the whole pipeline (outbox, relay, broker, search consumer) for 10 s and
// reports the index-lag histogram's p50/p95.
func BenchmarkIndexLag(b *testing.B) {
	s := apitest.New(b, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	s.StartEvents(b)
	owner := s.Signup(b, "lagged")
	for b.Loop() {
		ticker := time.NewTicker(5 * time.Millisecond) // 200/s
		deadline := time.Now().Add(10 * time.Second)
		var wg sync.WaitGroup
		var failed, created, writes atomic.Int64
		for i := 0; time.Now().Before(deadline); i++ {
			<-ticker.C
			wg.Go(func() {
				var r apitest.Resp
				// Comment only on tickets already acknowledged, so no
				// write races the create it depends on.
				if n := created.Load(); i%2 == 0 || n == 0 {
					r = s.Call(b, "POST", "/t/lagged/api/v1/tickets", owner, map[string]any{"title": fmt.Sprintf("lag %d", i), "body": "x"})
					if r.Status == 201 {
						created.Add(1)
					}
				} else {
					r = s.Call(b, "POST", fmt.Sprintf("/t/lagged/api/v1/tickets/%d/comments", 1+int64(i)%n), owner, map[string]any{"body": "more"})
				}
				if r.Status != 201 {
					failed.Add(1)
					return
				}
				writes.Add(1)
			})
		}
		ticker.Stop()
		wg.Wait()
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d writes failed", n)
		}
		drainWrites(b, s, "lagged", int(writes.Load()))
	}
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "patchdesk_search_index_lag_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		total := float64(h.GetSampleCount())
		quantile := func(q float64) float64 {
			prevBound, prevCount := 0.0, 0.0
			for _, bk := range h.GetBucket() {
				c := float64(bk.GetCumulativeCount())
				if c >= q*total {
					return prevBound + (bk.GetUpperBound()-prevBound)*(q*total-prevCount)/max(c-prevCount, 1)
				}
				prevBound, prevCount = bk.GetUpperBound(), c
			}
			return prevBound
		}
		b.ReportMetric(total, "events")
		b.ReportMetric(quantile(0.5)*1000, "lag-p50-ms")
		b.ReportMetric(quantile(0.95)*1000, "lag-p95-ms")
	}
}

// drainWrites waits until the search consumer has processed an event for
// every acknowledged write of slug and no document waits for a refresh, so
// the histogram read afterwards holds every write's lag.
func drainWrites(b *testing.B, s *apitest.Server, slug string, writes int) {
	ctx := context.Background()
	t, err := s.Reg.Resolve(ctx, slug)
	if err != nil {
		b.Fatal(err)
	}
	apitest.Eventually(b, 10*time.Minute, "search events drained", func() bool {
		var processed int
		var dirty bool
		err := s.Reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM processed_events WHERE consumer = 'patchdesk-search'),
				EXISTS (SELECT 1 FROM search_docs WHERE dirty_since IS NOT NULL)`).Scan(&processed, &dirty)
		})
		if err != nil {
			b.Fatal(err)
		}
		return processed >= writes && !dirty
	})
}
