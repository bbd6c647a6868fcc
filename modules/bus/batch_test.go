package bus_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
)

// TestPoisonInABatchIsDeadLetteredAlone: a batch holding a poison message
// fails as a whole; the consumer then handles its messages one at a time,
// so the poison one is dead-lettered after bounded retries and every other
// message of the batch is handled once, in order, and committed (a new
// member of the group gets nothing again).
func TestPoisonInABatchIsDeadLetteredAlone(t *testing.T) {
	t.Parallel()
	brokers := startTopics(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := bus.NewWriter(brokers, bus.TopicEvents)
	defer w.Close()
	want := []string{"a", "b", "c", "d", "e"}
	var msgs []kafka.Message
	for _, v := range []string{"a", "b", "poison", "c", "d", "e"} {
		msgs = append(msgs, kafka.Message{Key: []byte("tenant:ticket"), Value: []byte(v)})
	}
	// Written together: one partition, and the consumer finds them buffered as one batch.
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	var (
		mu              sync.Mutex
		handled         []string
		batches, single int
	)
	handle := func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		single++
		if string(m.Value) == "poison" {
			return bus.Poison(errors.New("cannot handle this"))
		}
		handled = append(handled, string(m.Value))
		return nil
	}
	batch := func(_ context.Context, ms []kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		for _, m := range ms {
			if string(m.Value) == "poison" {
				return bus.Poison(errors.New("batch holds a poison message"))
			}
		}
		for _, m := range ms {
			handled = append(handled, string(m.Value))
		}
		return nil
	}
	run := func(ctx context.Context) chan error {
		c, err := bus.NewBatchConsumer(bus.ConsumerConfig{Brokers: brokers, Group: "batch-poison", MaxAttempts: 2, Backoff: 10 * time.Millisecond},
			bus.NewConsumerMetrics(prometheus.NewRegistry()), handle, batch)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return done
	}
	first, stop := context.WithCancel(ctx)
	done := run(first)
	dl := firstDeadLetter(ctx, t, brokers, 30*time.Second)
	if string(dl.Value) != "poison" {
		t.Fatalf("dead letter %q, want the poison message", dl.Value)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(handled)
		mu.Unlock()
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %v, want %v once each in order", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if batches == 0 || single == 0 {
		t.Errorf("%d batches and %d single attempts: want the batch tried, then its messages one by one", batches, single)
	}
	mu.Unlock()

	// Everything was committed: another member of the group gets nothing.
	second, stop2 := context.WithCancel(ctx)
	done = run(second)
	time.Sleep(2 * time.Second)
	stop2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(handled, want) {
		t.Fatalf("after a new member joined, handled %v, want %v (offsets not committed?)", handled, want)
	}
}
