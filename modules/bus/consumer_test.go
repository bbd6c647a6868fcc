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

// TestPoisonMessageIsDeadLettered: a handler that always fails on one message
// sends it to the dead-letter topic after bounded retries, and the messages
// behind it on the same partition are still handled.
func TestPoisonMessageIsDeadLettered(t *testing.T) {
	t.Parallel()
	broker, err := bus.StartBroker("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := bus.EnsureTopics(ctx, brokers); err != nil {
		t.Fatal(err)
	}
	w := bus.NewWriter(brokers, bus.TopicEvents)
	defer w.Close()
	// One key: one partition, in this order.
	for _, v := range []string{"first", "poison", "third"} {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("tenant:ticket"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu       sync.Mutex
		handled  []string
		attempts int
	)
	c, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: brokers, Group: "poison-test", MaxAttempts: 3, Backoff: 10 * time.Millisecond},
		bus.NewConsumerMetrics(prometheus.NewRegistry()), func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if string(m.Value) == "poison" {
				attempts++
				return errors.New("cannot handle this")
			}
			handled = append(handled, string(m.Value))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: bus.TopicDeadLetter, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	dl, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("read dead letter: %v", err)
	}
	if string(dl.Value) != "poison" || bus.Header(dl, "x-dlq-error") != "cannot handle this" || bus.Header(dl, "x-dlq-group") != "poison-test" {
		t.Fatalf("dead letter: %q %v", dl.Value, dl.Headers)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(handled)
		mu.Unlock()
		if slices.Equal(got, []string{"first", "third"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %v: the poison message blocked the partition", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if attempts != 3 {
		t.Errorf("poison attempted %d times, want 3", attempts)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
