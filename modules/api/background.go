package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/outbox"
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
	// Consumers are the consumer groups (notify, …).
	Consumers []Runner
	// Jobs work scheduled deliveries.
	Jobs Runner
}

// All lists every runner.
func (w Workers) All() []Runner { return append(append([]Runner{w.Relay}, w.Consumers...), w.Jobs) }

// Background builds the outbox relay, the consumer groups and the delivery job workers.
func Background(app *App, reg *tenancy.Registry, metrics *obs.Metrics, log *slog.Logger, cfg BackgroundConfig) (*Workers, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("background: no Kafka brokers")
	}
	if cfg.Relay.Log == nil {
		cfg.Relay.Log = log
	}
	writer := bus.NewWriter(cfg.Brokers, bus.TopicEvents)
	relay := outbox.NewRelay(cfg.Relay, reg, writer, metrics.Registry)
	cm := bus.NewConsumerMetrics(metrics.Registry)
	cc := cfg.Consumer
	cc.Brokers, cc.Group, cc.Log = cfg.Brokers, notify.ConsumerGroup, log
	notifyConsumer, err := bus.NewConsumer(cc, cm, app.Notify.HandleEvent)
	if err != nil {
		return nil, err
	}
	return &Workers{
		Relay: func(ctx context.Context) error {
			defer writer.Close()
			return relay.Run(ctx)
		},
		Consumers: []Runner{notifyConsumer.Run},
		Jobs:      app.Jobs.Run,
	}, nil
}
