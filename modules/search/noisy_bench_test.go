package search_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

// randomWords returns about n bytes of distinct random words, the worst case
// for a tsvector (every word is a new lexeme).
func randomWords(n int) string {
	raw := make([]byte, n/2)
	_, _ = rand.Read(raw)
	h := hex.EncodeToString(raw)
	var b strings.Builder
	for i := 0; i+8 <= len(h) && b.Len()+9 <= n; i += 8 {
		b.WriteString(h[i : i+8])
		b.WriteByte(' ')
	}
	return b.String()
}

// BenchmarkQuietLagUnderNoisyTenant measures how long a quiet tenant's new
// ticket takes to become searchable while another tenant posts 64 KB
// comments (60 per ticket) as fast as its rate limit lets it, through the
// whole pipeline (API, outbox, relay, broker, search consumer); posters=0
// is the same run without the noisy tenant, for comparison. The lag of each
// quiet ticket is read from the database once everything has drained:
// search_docs.updated_at (index transaction) minus tickets.created_at
// (write transaction), both on the database clock, split at the outbox
// row's published_at into relay and consumer time.
func BenchmarkQuietLagUnderNoisyTenant(b *testing.B) {
	for _, posters := range []int{0, 2} {
		b.Run(fmt.Sprintf("posters=%d", posters), func(b *testing.B) { quietLag(b, posters) })
	}
}

func quietLag(b *testing.B, posters int) {
	s := apitest.New(b, nil)
	s.StartEvents(b)
	noisy, quiet := s.Signup(b, "noisy"), s.Signup(b, "quiet")
	const run = 15 * time.Second
	var lags []lag
	for b.Loop() {
		var wg sync.WaitGroup
		var posted, limited, failed atomic.Int64
		stop := time.Now().Add(run)
		for g := range posters {
			wg.Go(func() { postNoisy(b, s, noisy, g, stop, &posted, &limited, &failed) })
		}
		quietN := 0
		for tick := time.NewTicker(250 * time.Millisecond); time.Now().Before(stop); <-tick.C {
			r := s.Call(b, "POST", "/t/quiet/api/v1/tickets", quiet, map[string]any{"title": fmt.Sprintf("quiet %d", quietN), "body": "hello"})
			if r.Status != 201 {
				b.Fatalf("quiet ticket: %s", r)
			}
			quietN++
		}
		wg.Wait()
		b.Logf("noisy: %d comments of 64 KB posted, %d rate-limited, %d failed; quiet: %d tickets", posted.Load(), limited.Load(), failed.Load(), quietN)
		start := time.Now()
		drain(b, s, quietN)
		b.Logf("drained in %s", time.Since(start).Round(time.Millisecond))
		lags = quietLags(b, s)
	}
	pick := func(f func(lag) float64) []float64 {
		out := make([]float64, len(lags))
		for i, l := range lags {
			out[i] = f(l)
		}
		slices.Sort(out)
		return out
	}
	total, relay, consumer := pick(func(l lag) float64 { return l.total }), pick(func(l lag) float64 { return l.relay }),
		pick(func(l lag) float64 { return l.total - l.relay })
	p95 := func(v []float64) float64 { return v[len(v)*95/100] * 1000 }
	b.ReportMetric(total[len(total)/2]*1000, "lag-p50-ms")
	b.ReportMetric(p95(total), "lag-p95-ms")
	b.ReportMetric(total[len(total)-1]*1000, "lag-max-ms")
	b.ReportMetric(p95(relay), "relay-p95-ms")
	b.ReportMetric(p95(consumer), "consumer-p95-ms")
}

// postNoisy posts 64 KB comments until stop, 60 per ticket, backing off
// when the rate limit answers 429.
func postNoisy(b *testing.B, s *apitest.Server, token string, g int, stop time.Time, posted, limited, failed *atomic.Int64) {
	number := ""
	for i := 0; time.Now().Before(stop); {
		if i%60 == 0 && number == "" {
			r := s.Call(b, "POST", "/t/noisy/api/v1/tickets", token, map[string]any{"title": fmt.Sprintf("noisy %d-%d", g, i), "body": "flood"})
			if r.Status == 429 {
				limited.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if r.Status != 201 {
				failed.Add(1)
				continue
			}
			number = fmt.Sprint(r.JSON["number"])
		}
		r := s.Call(b, "POST", "/t/noisy/api/v1/tickets/"+number+"/comments", token, map[string]any{"body": randomWords(64000)})
		switch r.Status {
		case 201:
			posted.Add(1)
			if i++; i%60 == 0 {
				number = ""
			}
		case 429:
			limited.Add(1)
			time.Sleep(100 * time.Millisecond)
		default:
			failed.Add(1)
		}
	}
}

// drain waits until every quiet ticket is indexed and the search consumer
// has stopped making progress on the noisy tenant's events (processed, or
// dead-lettered on a build that fails them).
func drain(b *testing.B, s *apitest.Server, quietN int) {
	ctx := context.Background()
	count := func(slug, q string) int {
		t, err := s.Reg.Resolve(ctx, slug)
		if err != nil {
			b.Fatal(err)
		}
		var n int
		if err := s.Reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error { return tx.QueryRow(ctx, q).Scan(&n) }); err != nil {
			b.Fatal(err)
		}
		return n
	}
	apitest.Eventually(b, 20*time.Minute, "quiet tickets indexed", func() bool {
		return count("quiet", `SELECT count(*) FROM search_docs`) == quietN
	})
	last, since := -1, time.Now()
	apitest.Eventually(b, 20*time.Minute, "noisy events drained", func() bool {
		n := count("noisy", `SELECT count(*) FROM processed_events WHERE consumer = 'patchdesk-search'`)
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 3*time.Second
	})
}

// lag is one quiet ticket's index lag, in seconds, and the part of it
// spent before the relay published its event.
type lag struct{ total, relay float64 }

// quietLags returns each quiet ticket's index lag, read as the database's
// owner (the outbox is not readable by tenant roles).
func quietLags(b *testing.B, s *apitest.Server) []lag {
	ctx := context.Background()
	t, err := s.Reg.Resolve(ctx, "quiet")
	if err != nil {
		b.Fatal(err)
	}
	conn := s.Admin(b)
	rows, err := conn.Query(ctx, `SELECT extract(epoch FROM d.updated_at - t.created_at)::float8,
			extract(epoch FROM o.published_at - t.created_at)::float8
		FROM `+pgx.Identifier{t.Schema, "search_docs"}.Sanitize()+` d
		JOIN `+pgx.Identifier{t.Schema, "tickets"}.Sanitize()+` t ON t.id = d.ticket_id
		JOIN infra.outbox o ON o.ticket_id = t.id AND o.type = 'ticket.created'`)
	if err != nil {
		b.Fatal(err)
	}
	lags, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lag, error) {
		var l lag
		return l, r.Scan(&l.total, &l.relay)
	})
	if err != nil || len(lags) == 0 {
		b.Fatalf("quiet lags: %d %v", len(lags), err)
	}
	return lags
}
