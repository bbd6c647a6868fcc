package outbox_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/tenancy"
)

// BenchmarkRelayThroughput measures how fast the relay drains a backlog of
// outbox events to the embedded broker over TCP (acks from all replicas),
// reported as events/s.
func BenchmarkRelayThroughput(b *testing.B) {
	s := apitest.New(b, nil)
	ev := s.StartEvents(b)
	ev.StopRelay()
	s.Signup(b, "throughput")
	ctx := context.Background()
	t, err := s.Reg.Resolve(ctx, "throughput")
	if err != nil {
		b.Fatal(err)
	}
	const perIter = 20_000
	data, _ := json.Marshal(map[string]any{"ticket": map[string]any{"title": "benchmark event", "number": 1}})
	total := 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		err := s.Reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			evs := make([]events.Envelope, perIter)
			for i := range evs {
				id := uuid.New()
				evs[i] = events.Envelope{ID: id, Type: "ticket.bench", Version: events.Version, TicketID: &id, OccurredAt: time.Now(), Data: data}
			}
			return outbox.Enqueue(ctx, tx, evs...)
		})
		if err != nil {
			b.Fatal(err)
		}
		pub := &countingPublisher{w: bus.NewWriter(ev.Brokers(), bus.TopicEvents)}
		rctx, cancel := context.WithCancel(ctx)
		relay := outbox.NewRelay(outbox.RelayConfig{BatchSize: 2000}, s.Reg, pub, prometheus.NewRegistry())
		done := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { defer close(done); _ = relay.Run(rctx) }()
		for pub.n.Load() < perIter {
			time.Sleep(time.Millisecond)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		pub.w.Close()
		total += perIter
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
}
