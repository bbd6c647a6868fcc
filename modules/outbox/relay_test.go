package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/outbox"
)

// countingPublisher counts what one relay published through a real writer.
type countingPublisher struct {
	w *kafka.Writer
	n atomic.Int64
}

func (c *countingPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := c.w.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	c.n.Add(int64(len(msgs)))
	return nil
}

func TestOneLeaderAndHandover(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	ev := s.StartEvents(t)
	ev.StopRelay()
	owner := s.Signup(t, "leaders")
	create := func(n int) {
		for i := range n {
			if r := s.Call(t, "POST", "/t/leaders/api/v1/tickets", owner, map[string]any{"title": fmt.Sprintf("t%d", i), "body": "x"}); r.Status != 201 {
				t.Fatal(r)
			}
		}
	}
	type relay struct {
		pub    *countingPublisher
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func() *relay {
		w := bus.NewWriter(ev.Brokers(), bus.TopicEvents)
		r := &relay{pub: &countingPublisher{w: w}, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		rl := outbox.NewRelay(outbox.RelayConfig{Sweep: 50 * time.Millisecond, Standby: 50 * time.Millisecond}, s.Reg, r.pub, prometheus.NewRegistry())
		go func() {
			defer close(r.done)
			defer w.Close()
			_ = rl.Run(ctx)
		}()
		return r
	}
	a, b := start(), start()
	var stopOnce sync.Once
	stop := func(r *relay) { stopOnce.Do(func() { r.cancel(); <-r.done }) }
	defer func() { a.cancel(); b.cancel(); <-a.done; <-b.done }()

	create(10)
	apitest.Eventually(t, 20*time.Second, "10 events published", func() bool { return a.pub.n.Load()+b.pub.n.Load() == 10 })
	leader, standby := a, b
	if b.pub.n.Load() > 0 {
		leader, standby = b, a
	}
	if leader.pub.n.Load() != 10 || standby.pub.n.Load() != 0 {
		t.Fatalf("both relays published: %d and %d", a.pub.n.Load(), b.pub.n.Load())
	}
	stop(leader) // the leader dies; its session lock goes with it
	create(5)
	apitest.Eventually(t, 20*time.Second, "the standby takes over", func() bool { return standby.pub.n.Load() == 5 })
	if leader.pub.n.Load() != 10 {
		t.Fatalf("the stopped relay kept publishing: %d", leader.pub.n.Load())
	}
}
