package api

import (
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/modules/search"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Runner is a background loop that runs until its context ends.
type Runner func(ctx context.Context) error

// BackgroundConfig configures the background side of PatchDesk.
type BackgroundConfig struct {
	Brokers []string
	Relay   outbox.RelayConfig
	// Consumer tunes retries of every consumer group.
	Consumer bus.ConsumerConfig
}

// Workers are the loops that move side effects off the request path.
type Workers struct {
	// Relay publishes the outbox to Kafka.
	Relay Runner
	// Jobs works scheduled jobs (deliveries, exports).
	Jobs Runner
	// handlers of each consumer group, one message and a batch at a time.
	handlers map[string]bus.Handler
	batches  map[string]bus.BatchHandler
	consumer bus.ConsumerConfig
	metrics  *bus.ConsumerMetrics
}

// Groups lists the consumer groups.
func (w *Workers) Groups() []string {
	var out []string
	for g := range w.handlers {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// Handler returns the handler of a consumer group, for an operator who
// replays dead-lettered messages through it (patchdesk deadletter replay).
func (w *Workers) Handler(group string) (bus.Handler, error) {
	h, ok := w.handlers[group]
	if !ok {
		return nil, errors.New("unknown consumer group " + group)
	}
	return h, nil
}

// Consumer returns a runner that joins group as a new member.
func (w *Workers) Consumer(group string) (Runner, error) {
	h, ok := w.handlers[group]
	if !ok {
		return nil, errors.New("unknown consumer group " + group)
	}
	cc := w.consumer
	cc.Group = group
	c, err := bus.NewBatchConsumer(cc, w.metrics, h, w.batches[group])
	if err != nil {
		return nil, err
	}
	return c.Run, nil
}

// All lists every runner: relay, one member of each consumer group, jobs.
func (w *Workers) All() ([]Runner, error) {
	out := []Runner{w.Relay, w.Jobs}
	for _, g := range w.Groups() {
		r, err := w.Consumer(g)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Background builds the outbox relay, the consumer groups (notify, search,
// reports) and the job workers.
func Background(app *App, reg *tenancy.Registry, metrics *obs.Metrics, log *slog.Logger, cfg BackgroundConfig) (*Workers, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("background: no Kafka brokers")
	}
	if cfg.Relay.Log == nil {
		cfg.Relay.Log = log
	}
	writer := bus.NewWriter(cfg.Brokers, bus.TopicEvents)
	relay := outbox.NewRelay(cfg.Relay, reg, writer, metrics.Registry)
	cc := cfg.Consumer
	cc.Brokers, cc.Log = cfg.Brokers, log
	return &Workers{
		Relay: func(ctx context.Context) error {
			defer writer.Close()
			return relay.Run(ctx)
		},
		Jobs: app.Jobs.Run,
		handlers: map[string]bus.Handler{
			notify.ConsumerGroup:  app.Notify.HandleEvent,
			search.ConsumerGroup:  app.Search.HandleEvent,
			reports.ConsumerGroup: app.Reports.HandleEvent,
		},
		batches: map[string]bus.BatchHandler{
			notify.ConsumerGroup:  app.Notify.HandleBatch,
			search.ConsumerGroup:  app.Search.HandleBatch,
			reports.ConsumerGroup: app.Reports.HandleBatch,
		},
		consumer: cc,
		metrics:  bus.NewConsumerMetrics(metrics.Registry),
	}, nil
}
