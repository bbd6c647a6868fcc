package reports_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

// BenchmarkSummary100k measures GET /reports/summary over HTTP with 100,000
// tickets spread over the past year, for a 30-day and a one-year range.
func BenchmarkSummary100k(b *testing.B) {
	s := apitest.New(b, nil)
	owner := s.Signup(b, "bigreports")
	ctx := context.Background()
	t, err := s.Reg.Resolve(ctx, "bigreports")
	if err != nil {
		b.Fatal(err)
	}
	err = s.Reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		for _, q := range []string{
			`INSERT INTO report_tickets (ticket_id, number, title, priority, status, assignee_id, created_at, first_response_at, resolved_at)
			 SELECT gen_random_uuid(), i, 'ticket ' || i, 'normal',
				(ARRAY['open','in_progress','pending','resolved','closed'])[1 + i % 5],
				(ARRAY['00000000-0000-0000-0000-000000000001','00000000-0000-0000-0000-000000000002','00000000-0000-0000-0000-000000000003'])[1 + i % 3]::uuid,
				now() - make_interval(secs => i * 315),
				now() - make_interval(secs => i * 315) + make_interval(secs => 60 + i % 3600),
				CASE WHEN i % 5 >= 3 THEN now() - make_interval(secs => i * 315) + make_interval(secs => 3600 + i % 86400) END
			 FROM generate_series(1, 100000) i`,
			`INSERT INTO report_daily (day, created, resolved)
			 SELECT created_at::date, count(*), count(resolved_at) FROM report_tickets GROUP BY 1`,
			`INSERT INTO report_backlog (status, count) SELECT status, count(*) FROM report_tickets GROUP BY 1`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	conn := s.Admin(b)
	if _, err := conn.Exec(ctx, `ANALYZE `+t.Schema+`.report_tickets, `+t.Schema+`.report_daily`); err != nil {
		b.Fatal(err)
	}
	today := time.Now().UTC()
	ranges := []string{
		"from=" + today.AddDate(0, 0, -29).Format(time.DateOnly) + "&to=" + today.Format(time.DateOnly),
		"from=" + today.AddDate(-1, 0, 0).Format(time.DateOnly) + "&to=" + today.Format(time.DateOnly),
	}
	var lat30, latYear []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		r := s.Call(b, "GET", "/t/bigreports/api/v1/reports/summary?"+ranges[i%2], owner, nil)
		if r.Status != 200 {
			b.Fatal(r)
		}
		if i%2 == 0 {
			lat30 = append(lat30, time.Since(start))
		} else {
			latYear = append(latYear, time.Since(start))
		}
		i++
	}
	p95 := func(l []time.Duration) float64 {
		slices.Sort(l)
		return float64(l[len(l)*95/100].Microseconds()) / 1000
	}
	b.ReportMetric(p95(lat30), "30d-p95-ms")
	b.ReportMetric(p95(latYear), "1y-p95-ms")
}
