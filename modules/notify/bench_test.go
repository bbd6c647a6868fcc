package notify_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/notify/notifytest"
)

// BenchmarkCommitToWebhook measures, per ticket created, the time from the
// ticket's commit (its event's occurred_at) to the webhook receiver seeing
// it, through outbox, relay, embedded broker, consumer and delivery job.
// Tickets are created at a steady 20/s while measuring; p50/p95 are reported.
func BenchmarkCommitToWebhook(b *testing.B) {
	s := apitest.New(b, nil)
	s.StartEvents(b)
	hook := notifytest.StartHook(b, hookSecret)
	owner := s.Signup(b, "latency")
	if r := s.Call(b, "POST", "/t/latency/api/v1/webhooks", owner, map[string]any{"url": hook.URL, "events": []string{"ticket.created"}, "secret": hookSecret}); r.Status != 201 {
		b.Fatal(r)
	}
	var lat []time.Duration
	seen := 0
	for b.Loop() {
		r := s.Call(b, "POST", "/t/latency/api/v1/tickets", owner, map[string]any{"title": fmt.Sprintf("latency %d", seen), "body": "x"})
		if r.Status != 201 {
			b.Fatal(r)
		}
		seen++
		time.Sleep(50 * time.Millisecond)
	}
	apitest.Eventually(b, time.Minute, "every webhook", func() bool {
		counts, _ := hook.Counts()
		return len(counts) == seen
	})
	counts, _ := hook.Counts()
	for id := range counts {
		var ev struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		if err := json.Unmarshal(hook.Body(id), &ev); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, hook.ReceivedAt(id).Sub(ev.OccurredAt))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}
