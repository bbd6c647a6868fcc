package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Handler processes one message. It must be idempotent: delivery is
// at-least-once, so the same event can arrive again after a crash or rebalance.
type Handler func(ctx context.Context, m kafka.Message) error

// BatchHandler processes the messages fetched together, in order. It must
// be idempotent like Handler, and all-or-nothing per unit of work it commits
// (a tenant's transaction): when it fails, or the process dies in the
// middle, the consumer handles the same messages again one at a time, and
// whatever the batch had committed must be recognised as done (by
// processed-event keys) rather than applied twice.
type BatchHandler func(ctx context.Context, ms []kafka.Message) error

// ErrPermanent marks a failure that retrying cannot fix; the message goes
// straight to the dead-letter topic. See also Poison and Classify.
var ErrPermanent = errors.New("permanent failure")

// ConsumerConfig configures a consumer group member.
type ConsumerConfig struct {
	Brokers []string
	Topic   string
	// Group is the consumer group; each read model or side effect has its own.
	Group string
	// MaxAttempts bounds handler attempts of a poison message before
	// dead-lettering (default 5). Transient failures are retried without limit.
	MaxAttempts int
	// Backoff is the first retry delay (default 100ms).
	Backoff time.Duration
	// MaxBackoff caps the delay between retries of a transient failure (default 30s).
	MaxBackoff time.Duration
	// AttemptTimeout bounds one handler call (default 1m); running out is transient.
	AttemptTimeout time.Duration
	// StallAfter: while this member is idle, a partition of its group whose
	// backlog has not moved for this long makes it rejoin the group (default 30s).
	StallAfter time.Duration
	// MaxBatch bounds the messages handed to a BatchHandler at once (default 500).
	MaxBatch int
	Log      *slog.Logger
}

// batchGather is how long the consumer waits for one more message before
// handing over the batch it has: the messages the reader already buffered
// arrive well within it, so a burst becomes one batch and a lone event waits
// no longer than this.
const batchGather = 2 * time.Millisecond

// attemptsPerStep is how many retries share one backoff delay before it
// doubles; each step is logged once, so a long outage logs a few dozen lines.
const attemptsPerStep = 3

// Consumer reads a topic as a member of a group: at-least-once, committing
// each message only after its handler succeeded or it was dead-lettered.
// Messages are handled one at a time, so while one is retried nothing behind
// it is read: its partition (and this member's others) wait, visible on the
// lag and retrying gauges, rather than skipping a side effect.
type Consumer struct {
	cfg     ConsumerConfig
	handle  Handler
	batch   BatchHandler
	reader  *kafka.Reader
	dlq     *kafka.Writer
	metrics *ConsumerMetrics
	// busy is set while a message is in hand (handled, retried, committed).
	busy atomic.Bool
	// rejoins counts stall rejoins since a message was last handled.
	rejoins atomic.Int32
}

// ConsumerMetrics are shared by every consumer of a process.
type ConsumerMetrics struct {
	handled  *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	retrying *prometheus.GaugeVec
}

// NewConsumerMetrics registers the consumer metrics.
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	m := &ConsumerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchdesk_consumer_messages_total", Help: "Messages handled by consumer group and outcome (ok, retried, dead_lettered), and rejoins of a stalled group (rejoined).",
		}, []string{"group", "outcome"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patchdesk_consumer_lag", Help: "Messages between the group's position and the end of the partition it last read.",
		}, []string{"group"}),
		retrying: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patchdesk_consumer_retrying", Help: "1 while the group's member is retrying a message after a transient failure (its partitions wait).",
		}, []string{"group"}),
	}
	reg.MustRegister(m.handled, m.lag, m.retrying)
	return m
}

// NewConsumer builds a consumer; Run starts it.
func NewConsumer(cfg ConsumerConfig, metrics *ConsumerMetrics, handle Handler) (*Consumer, error) {
	return NewBatchConsumer(cfg, metrics, handle, nil)
}

// NewBatchConsumer builds a consumer that hands the messages it has at hand
// to batch together (a burst costs one database transaction per tenant, not
// one per event), and falls back to handle, one message at a time with the
// usual retries and dead-lettering, for a batch that failed. batch may be nil.
func NewBatchConsumer(cfg ConsumerConfig, metrics *ConsumerMetrics, handle Handler, batch BatchHandler) (*Consumer, error) {
	cfg.MaxBatch = cmp.Or(cfg.MaxBatch, 500)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 5)
	cfg.Backoff = cmp.Or(cfg.Backoff, 100*time.Millisecond)
	cfg.MaxBackoff = max(cmp.Or(cfg.MaxBackoff, 30*time.Second), cfg.Backoff)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, time.Minute)
	cfg.StallAfter = cmp.Or(cfg.StallAfter, 30*time.Second)
	cfg.Topic = cmp.Or(cfg.Topic, TopicEvents)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Brokers) == 0 || cfg.Group == "" || handle == nil || metrics == nil {
		return nil, errors.New("consumer: brokers, group, handler and metrics are required")
	}
	c := &Consumer{
		cfg:     cfg,
		handle:  handle,
		batch:   batch,
		dlq:     NewWriter(cfg.Brokers, TopicDeadLetter),
		metrics: metrics,
	}
	c.reader = c.newReader()
	return c, nil
}

// newReader joins the group as a new member.
func (c *Consumer) newReader() *kafka.Reader {
	cfg := c.cfg
	return kafka.NewReader(kafka.ReaderConfig{
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
		// Group membership trouble (joins, rebalances, heartbeats) is
		// otherwise invisible: a partition nobody fetches shows only as lag.
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			cfg.Log.Warn("kafka reader: "+fmt.Sprintf(msg, args...), "group", cfg.Group)
		}),
	})
}

// Run consumes until ctx ends, then finishes the message in hand, commits it
// and leaves the group. A member that sees its group stalled rejoins.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	// A batch that succeeds never passes through process: the series must
	// exist at 0 from the start, or its alert and panel see nothing.
	c.metrics.retrying.WithLabelValues(c.cfg.Group).Set(0)
	for {
		stalled, err := c.consume(ctx)
		c.reader.Close()
		if !stalled || ctx.Err() != nil {
			return err
		}
		c.reader = c.newReader()
	}
}

// consume reads with the current reader until ctx ends (false) or the stall
// watch asks for a rejoin (true).
func (c *Consumer) consume(ctx context.Context) (bool, error) {
	fetchCtx, rejoin := context.WithCancel(ctx)
	defer rejoin()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); c.watch(fetchCtx, rejoin) }()
	defer func() { <-watchDone }()
	fetchRetry := c.backoff()
	for {
		m, err := c.reader.FetchMessage(fetchCtx)
		if ctx.Err() != nil {
			return false, nil
		}
		if fetchCtx.Err() != nil {
			return true, nil
		}
		if err != nil {
			d, step := fetchRetry.next()
			if step {
				c.cfg.Log.WarnContext(ctx, "fetch message: retrying", "group", c.cfg.Group, "retry_in", d, "err", err)
			}
			if !sleep(ctx, d) {
				return false, nil
			}
			continue
		}
		fetchRetry = c.backoff()
		// A handler attempt in progress finishes even if shutdown starts;
		// retries and dead-lettering stop at shutdown, leaving the message
		// uncommitted so it is delivered again.
		c.busy.Store(true)
		var done bool
		if c.batch != nil {
			done, err = c.processBatch(ctx, fetchCtx, m)
		} else {
			done = c.process(ctx, m)
			if done {
				c.rejoins.Store(0)
				err = c.commit(ctx, m)
			}
		}
		c.busy.Store(false)
		if !done || err != nil {
			return false, err
		}
		c.metrics.lag.WithLabelValues(c.cfg.Group).Set(float64(c.reader.Stats().Lag))
	}
}

// gather collects, after first, the messages that arrive within batchGather
// of each other, up to MaxBatch.
func (c *Consumer) gather(ctx context.Context, first kafka.Message) []kafka.Message {
	ms := []kafka.Message{first}
	for len(ms) < c.cfg.MaxBatch {
		wait, cancel := context.WithTimeout(ctx, batchGather)
		m, err := c.reader.FetchMessage(wait)
		cancel()
		if err != nil {
			break // none within the window (or shutdown): the message stays buffered in the reader
		}
		ms = append(ms, m)
	}
	return ms
}

// processBatch handles first and the messages gathered after it as one
// batch and commits them all; a failed batch is handled again message by
// message (process), committing each, so a poison message is retried and
// dead-lettered alone. It reports whether every message is done with.
func (c *Consumer) processBatch(ctx, fetchCtx context.Context, first kafka.Message) (bool, error) {
	ms := c.gather(fetchCtx, first)
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AttemptTimeout)
	err := c.batch(work, ms)
	cancel()
	if err == nil {
		c.metrics.handled.WithLabelValues(c.cfg.Group, "ok").Add(float64(len(ms)))
		c.rejoins.Store(0)
		return true, c.commit(ctx, ms...)
	}
	if ctx.Err() != nil {
		// Shutting down: like a retry, the fallback waits for the next
		// member; the batch stays uncommitted and is delivered again.
		return false, nil
	}
	c.cfg.Log.WarnContext(ctx, "batch failed: handling its messages one by one", "group", c.cfg.Group,
		"messages", len(ms), "err", err)
	for _, m := range ms {
		if !c.process(ctx, m) {
			return false, nil
		}
		c.rejoins.Store(0)
		if err := c.commit(ctx, m); err != nil {
			return false, err
		}
	}
	return true, nil
}

// watch checks the group's progress every StallAfter/3 and calls rejoin
// when a partition stalled while this member is idle.
func (c *Consumer) watch(ctx context.Context, rejoin func()) {
	w := newStallWatch(c)
	t := time.NewTicker(c.cfg.StallAfter / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p, stalled, err := w.stalled(ctx, now)
			if err != nil || !stalled || c.busy.Load() {
				continue
			}
			c.cfg.Log.WarnContext(ctx, "consumer group stalled: rejoining", "group", c.cfg.Group, "partition", p, "stalled_for", c.stallAfter())
			c.metrics.handled.WithLabelValues(c.cfg.Group, "rejoined").Inc()
			c.rejoins.Add(1)
			rejoin()
			return
		}
	}
}

// process runs the handler until it succeeds, retrying transient failures
// without limit and poison ones a bounded number of times, then dead-letters.
// It reports whether the message is done with (and may be committed).
func (c *Consumer) process(ctx context.Context, m kafka.Message) bool {
	retry := c.backoff()
	poisoned := 0
	defer c.metrics.retrying.WithLabelValues(c.cfg.Group).Set(0)
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, m)
		if err == nil {
			c.metrics.handled.WithLabelValues(c.cfg.Group, "ok").Inc()
			if attempt > 1 {
				c.cfg.Log.InfoContext(ctx, "message handled after retries", "group", c.cfg.Group,
					"partition", m.Partition, "offset", m.Offset, "attempts", attempt)
			}
			return true
		}
		var delay time.Duration
		switch class := Classify(err); class {
		case Retry:
			c.metrics.retrying.WithLabelValues(c.cfg.Group).Set(1)
			var step bool
			if delay, step = retry.next(); step {
				c.cfg.Log.WarnContext(ctx, "handler failed transiently: retrying, partition held", "group", c.cfg.Group,
					"partition", m.Partition, "offset", m.Offset, "attempts", attempt, "retry_in", delay, "err", err)
			}
		default:
			poisoned++
			if class == DeadLetterNow || poisoned >= c.cfg.MaxAttempts {
				return c.giveUp(ctx, m, err)
			}
			delay = c.cfg.Backoff << (poisoned - 1)
		}
		c.metrics.handled.WithLabelValues(c.cfg.Group, "retried").Inc()
		c.metrics.lag.WithLabelValues(c.cfg.Group).Set(float64(c.reader.Stats().Lag))
		if !sleep(ctx, delay) {
			return false
		}
	}
}

// attempt runs the handler once, bounded by AttemptTimeout and not cancelled
// by shutdown (a half-done attempt would only be redone).
func (c *Consumer) attempt(ctx context.Context, m kafka.Message) error {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AttemptTimeout)
	defer cancel()
	return c.handle(work, m)
}

// giveUp dead-letters a poison message.
func (c *Consumer) giveUp(ctx context.Context, m kafka.Message, err error) bool {
	c.cfg.Log.ErrorContext(ctx, "dead-lettering message", "group", c.cfg.Group, "partition", m.Partition, "offset", m.Offset, "err", err)
	if !c.deadLetter(ctx, m, err) {
		return false
	}
	c.metrics.handled.WithLabelValues(c.cfg.Group, "dead_lettered").Inc()
	return true
}

// backoff returns the consumer's capped exponential retry schedule.
func (c *Consumer) backoff() *retrySchedule {
	return &retrySchedule{first: c.cfg.Backoff, max: c.cfg.MaxBackoff}
}

// retrySchedule is a capped exponential backoff that keeps each delay for
// attemptsPerStep retries.
type retrySchedule struct {
	first, max time.Duration
	n          int
}

// next returns the delay before the next retry, and whether it starts a new
// step (the moment to log).
func (r *retrySchedule) next() (time.Duration, bool) {
	step, newStep := r.n/attemptsPerStep, r.n%attemptsPerStep == 0
	r.n++
	d := r.first << min(step, 30)
	if d <= 0 || d > r.max {
		d = r.max
	}
	return d, newStep
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

func (c *Consumer) commit(ctx context.Context, ms ...kafka.Message) error {
	for backoff := c.cfg.Backoff; ; backoff = min(backoff*2, 10*time.Second) {
		err := c.reader.CommitMessages(context.WithoutCancel(ctx), ms...)
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
