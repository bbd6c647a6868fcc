package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
)

// TestPoisonMessageIsDeadLettered: a handler that always fails on one message
// with a poison error sends it to the dead-letter topic after bounded
// retries, and the messages behind it on the same partition are still handled.
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
				return bus.Poison(errors.New("cannot handle this"))
			}
			handled = append(handled, string(m.Value))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	dl := firstDeadLetter(ctx, t, brokers, 30*time.Second)
	if string(dl.Value) != "poison" || bus.Header(dl, "x-dlq-error") != "poison message\ncannot handle this" || bus.Header(dl, "x-dlq-group") != "poison-test" {
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

// startTopics starts a broker with the topics and returns its address list.
func startTopics(t *testing.T) []string {
	t.Helper()
	broker, err := bus.StartBroker("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	if err := bus.EnsureTopics(context.Background(), brokers); err != nil {
		t.Fatal(err)
	}
	return brokers
}

// refusedConnection is the error pgx returns while PostgreSQL is down: a
// real connection attempt to a loopback port nobody listens on.
func refusedConnection(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = pgconn.Connect(context.Background(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	return fmt.Errorf("notify event: %w", err)
}

// logCounter counts log records with a given message.
type logCounter struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (h logCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

// TestTransientFailureIsRetriedNotDeadLettered: a handler that cannot reach
// PostgreSQL 20 times, then can, has its message processed exactly once and
// nothing dead-lettered, with one log line per backoff step. The poison
// message written after it is the first (and only) dead letter, which proves
// the transient one never went there without waiting for an absence.
func TestTransientFailureIsRetriedNotDeadLettered(t *testing.T) {
	t.Parallel()
	brokers := startTopics(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := bus.NewWriter(brokers, bus.TopicEvents)
	defer w.Close()
	for _, v := range []string{"blip", "poison"} {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("tenant:ticket"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	refused := refusedConnection(t)
	if bus.Classify(refused) != bus.Retry {
		t.Fatalf("connection refused classified %v", bus.Classify(refused))
	}
	var (
		mu        sync.Mutex
		failures  int
		processed int
		steps     atomic.Int64
	)
	log := slog.New(logCounter{Handler: slog.NewTextHandler(io.Discard, nil), msg: "handler failed transiently: retrying, partition held", n: &steps})
	metrics := bus.NewConsumerMetrics(prometheus.NewRegistry())
	c, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: brokers, Group: "blip-test", MaxAttempts: 2,
		Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Log: log},
		metrics, func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case string(m.Value) == "poison":
				return bus.Poison(errors.New("bad"))
			case failures < 20:
				failures++
				return refused
			}
			processed++
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()

	dl := firstDeadLetter(ctx, t, brokers, 60*time.Second)
	if string(dl.Value) != "poison" {
		t.Fatalf("first dead letter is %q: the transiently failing message was dead-lettered", dl.Value)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failures != 20 || processed != 1 {
		t.Fatalf("failures %d, processed %d; want 20 then 1", failures, processed)
	}
	// 20 retries, 3 per backoff step: 7 steps, 7 lines.
	if got := steps.Load(); got != 7 {
		t.Errorf("%d retry log lines for 20 transient failures, want 7 (one per backoff step)", got)
	}
}

// firstDeadLetter reads the first message of the dead-letter topic, waiting
// up to timeout for it.
func firstDeadLetter(ctx context.Context, t *testing.T, brokers []string, timeout time.Duration) kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: bus.TopicDeadLetter, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dl, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatalf("read dead letter: %v", err)
	}
	return dl
}
