package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Handler processes one message. It must be idempotent: delivery is
// at-least-once, so the same event can arrive again after a crash or rebalance.
type Handler func(ctx context.Context, m kafka.Message) error

// ErrPermanent marks a failure that retrying cannot fix; the message goes
// straight to the dead-letter topic.
var ErrPermanent = errors.New("permanent failure")

// ConsumerConfig configures a consumer group member.
type ConsumerConfig struct {
	Brokers []string
	Topic   string
	// Group is the consumer group; each read model or side effect has its own.
	Group string
	// MaxAttempts bounds handler attempts per message before dead-lettering (default 5).
	MaxAttempts int
	// Backoff is the first retry delay, doubled per attempt (default 100ms).
	Backoff time.Duration
	Log     *slog.Logger
}

// Consumer reads a topic as a member of a group: at-least-once, committing
// each message only after its handler succeeded or it was dead-lettered, so a
// poison message never blocks its partition.
type Consumer struct {
	cfg     ConsumerConfig
	handle  Handler
	reader  *kafka.Reader
	dlq     *kafka.Writer
	metrics *ConsumerMetrics
}

// ConsumerMetrics are shared by every consumer of a process.
type ConsumerMetrics struct {
	handled *prometheus.CounterVec
	lag     *prometheus.GaugeVec
}

// NewConsumerMetrics registers the consumer metrics.
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	m := &ConsumerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchdesk_consumer_messages_total", Help: "Messages handled by consumer group and outcome (ok, retried, dead_lettered).",
		}, []string{"group", "outcome"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patchdesk_consumer_lag", Help: "Messages between the group's position and the end of the partition it last read.",
		}, []string{"group"}),
	}
	reg.MustRegister(m.handled, m.lag)
	return m
}

// NewConsumer builds a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig, metrics *ConsumerMetrics, handle Handler) (*Consumer, error) {
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 5)
	cfg.Backoff = cmp.Or(cfg.Backoff, 100*time.Millisecond)
	cfg.Topic = cmp.Or(cfg.Topic, TopicEvents)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Brokers) == 0 || cfg.Group == "" || handle == nil || metrics == nil {
		return nil, errors.New("consumer: brokers, group, handler and metrics are required")
	}
	return &Consumer{
		cfg:    cfg,
		handle: handle,
		reader: kafka.NewReader(kafka.ReaderConfig{
			Brokers:        cfg.Brokers,
			GroupID:        cfg.Group,
			Topic:          cfg.Topic,
			MinBytes:       1,
			MaxBytes:       10 << 20,
			MaxWait:        250 * time.Millisecond,
			StartOffset:    kafka.FirstOffset,
			CommitInterval: 0, // synchronous commits: commit after handling
			ReadBackoffMin: 50 * time.Millisecond,
			ReadBackoffMax: time.Second,
		}),
		dlq:     NewWriter(cfg.Brokers, TopicDeadLetter),
		metrics: metrics,
	}, nil
}

// Run consumes until ctx ends, then finishes the message in hand, commits it
// and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	defer c.reader.Close()
	for {
		m, err := c.reader.FetchMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.cfg.Log.WarnContext(ctx, "fetch message", "group", c.cfg.Group, "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		// A handler attempt in progress finishes even if shutdown starts;
		// retries and dead-lettering stop at shutdown, leaving the message
		// uncommitted so it is delivered again.
		if !c.process(ctx, m) {
			return nil
		}
		if err := c.commit(ctx, m); err != nil {
			return err
		}
		c.metrics.lag.WithLabelValues(c.cfg.Group).Set(float64(c.reader.Stats().Lag))
	}
}

// process runs the handler with bounded retries, then dead-letters. It
// reports whether the message is done with (and may be committed).
func (c *Consumer) process(ctx context.Context, m kafka.Message) bool {
	work := context.WithoutCancel(ctx)
	var err error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if err = c.handle(work, m); err == nil {
			c.metrics.handled.WithLabelValues(c.cfg.Group, "ok").Inc()
			return true
		}
		if errors.Is(err, ErrPermanent) {
			break
		}
		c.metrics.handled.WithLabelValues(c.cfg.Group, "retried").Inc()
		if attempt < c.cfg.MaxAttempts && !sleep(ctx, c.cfg.Backoff<<(attempt-1)) {
			return false
		}
	}
	c.cfg.Log.ErrorContext(ctx, "dead-lettering message", "group", c.cfg.Group, "partition", m.Partition, "offset", m.Offset, "err", err)
	if !c.deadLetter(ctx, m, err) {
		return false
	}
	c.metrics.handled.WithLabelValues(c.cfg.Group, "dead_lettered").Inc()
	return true
}

// deadLetter writes m to the dead-letter topic, retrying until it is stored
// (losing it would lose the event) or shutdown begins.
func (c *Consumer) deadLetter(ctx context.Context, m kafka.Message, cause error) bool {
	dl := kafka.Message{Key: m.Key, Value: m.Value, Headers: append(m.Headers,
		kafka.Header{Key: "x-dlq-group", Value: []byte(c.cfg.Group)},
		kafka.Header{Key: "x-dlq-topic", Value: []byte(m.Topic)},
		kafka.Header{Key: "x-dlq-partition", Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: "x-dlq-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		kafka.Header{Key: "x-dlq-error", Value: []byte(fmt.Sprint(cause))},
	)}
	for backoff := c.cfg.Backoff; ; backoff = min(backoff*2, 10*time.Second) {
		err := c.dlq.WriteMessages(context.WithoutCancel(ctx), dl)
		if err == nil {
			return true
		}
		c.cfg.Log.ErrorContext(ctx, "write dead letter", "group", c.cfg.Group, "err", err)
		if !sleep(ctx, backoff) {
			return false
		}
	}
}

func (c *Consumer) commit(ctx context.Context, m kafka.Message) error {
	for backoff := c.cfg.Backoff; ; backoff = min(backoff*2, 10*time.Second) {
		err := c.reader.CommitMessages(context.WithoutCancel(ctx), m)
		if err == nil {
			return nil
		}
		// A lost commit only means redelivery, which handlers absorb.
		c.cfg.Log.WarnContext(ctx, "commit offset", "group", c.cfg.Group, "err", err)
		if errors.Is(err, kafka.ErrGroupClosed) || errors.Is(err, context.Canceled) {
			return nil
		}
		if !sleep(ctx, backoff) {
			return nil
		}
	}
}

// sleep waits d, reporting false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Header returns the value of a message header, or "".
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
