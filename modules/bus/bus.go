// Package bus is PatchDesk's Kafka plumbing: the embedded Kafka-protocol
// broker used when no cluster is configured, topic creation, the producer
// settings the outbox relay needs, and a small consumer framework.
package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Topics.
const (
	// TopicEvents carries outbox events, keyed tenant_id:ticket_id.
	TopicEvents = "patchdesk.ticket-events"
	// TopicDeadLetter receives events a consumer gave up on.
	TopicDeadLetter = "patchdesk.dead-letter"
	// eventPartitions spreads tenants over consumers while keeping each ticket ordered.
	eventPartitions = 6
)

// Broker is an embedded Kafka-protocol broker (kfake), persisted to a
// directory, reached over TCP like any cluster.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	stop    chan struct{}
	done    chan struct{}
}

// retentionSweep is how often the embedded broker drops expired messages;
// kfake enforces retention.ms only when asked to.
const retentionSweep = 5 * time.Minute

// StartBroker starts the embedded broker on addr ("127.0.0.1:0" picks a
// port) keeping its log in dataDir so it survives restarts.
func StartBroker(addr, dataDir string) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("broker port %q: %w", portStr, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(dataDir),
		kfake.SeedTopics(eventPartitions, TopicEvents),
		kfake.SeedTopics(1, TopicDeadLetter),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(address)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0], stop: make(chan struct{}), done: make(chan struct{})}
	go b.sweep()
	return b, nil
}

func (b *Broker) sweep() {
	defer close(b.done)
	t := time.NewTicker(retentionSweep)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.cluster.ApplyRetention()
		}
	}
}

// ApplyRetention drops the messages older than their topic's retention now
// (the broker also does it every few minutes).
func (b *Broker) ApplyRetention() { b.cluster.ApplyRetention() }

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, flushing its data directory.
func (b *Broker) Close() {
	close(b.stop)
	<-b.done
	b.cluster.Close()
}

// Retention is how long the broker keeps messages of each topic. Events are
// replayable history (read models rebuild from the database, not from them);
// dead letters wait for an operator, hence longer. Both hold tenant data,
// so they bound how long a deleted tenant's events remain (ADR 0007).
type Retention struct {
	Events     time.Duration // default 168h
	DeadLetter time.Duration // default 720h
}

func (r Retention) withDefaults() Retention {
	r.Events = cmp.Or(r.Events, 168*time.Hour)
	r.DeadLetter = cmp.Or(r.DeadLetter, 720*time.Hour)
	return r
}

func retentionMS(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// EnsureTopics creates the events and dead-letter topics when missing, with
// the default retention.
func EnsureTopics(ctx context.Context, brokers []string) error {
	return EnsureTopicsWith(ctx, brokers, Retention{})
}

// EnsureTopicsWith creates the events and dead-letter topics when missing
// and sets their retention.ms, on new and existing topics alike (an
// incremental change: other topic settings an operator made stay).
func EnsureTopicsWith(ctx context.Context, brokers []string, r Retention) error {
	r = r.withDefaults()
	if err := createTopics(ctx, brokers, r); err != nil {
		return err
	}
	// A transport of its own: the shared one may hold a connection to a
	// broker that restarted on the same address, which answers EOF.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}
	var resources []kafka.IncrementalAlterConfigsRequestResource
	for topic, d := range map[string]time.Duration{TopicEvents: r.Events, TopicDeadLetter: r.DeadLetter} {
		resources = append(resources, kafka.IncrementalAlterConfigsRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "retention.ms", Value: retentionMS(d), ConfigOperation: kafka.ConfigOperationSet}},
		})
	}
	res, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: resources})
	if err != nil {
		return fmt.Errorf("ensure topics: set retention: %w", err)
	}
	for _, rr := range res.Resources {
		if rr.Error != nil {
			return fmt.Errorf("ensure topics: set retention of %s: %w", rr.ResourceName, rr.Error)
		}
	}
	return nil
}

// createTopics creates the topics (with their retention) when missing.
func createTopics(ctx context.Context, brokers []string, r Retention) error {
	if len(brokers) == 0 {
		return errors.New("ensure topics: no brokers")
	}
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("ensure topics: find controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("ensure topics: dial controller: %w", err)
	}
	defer cc.Close()
	retention := func(d time.Duration) []kafka.ConfigEntry {
		return []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: retentionMS(d)}}
	}
	err = cc.CreateTopics(
		kafka.TopicConfig{Topic: TopicEvents, NumPartitions: eventPartitions, ReplicationFactor: -1, ConfigEntries: retention(r.Events)},
		kafka.TopicConfig{Topic: TopicDeadLetter, NumPartitions: 1, ReplicationFactor: -1, ConfigEntries: retention(r.DeadLetter)},
	)
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("ensure topics: %w", err)
	}
	return nil
}

// Ping checks that a broker answers.
func Ping(ctx context.Context, brokers []string) error {
	d := &kafka.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("broker unreachable: %w", err)
	}
	return conn.Close()
}

// NewWriter returns the producer the outbox relay publishes with: acks from
// all in-sync replicas, hash partitioning by key (one ticket stays ordered),
// and a low batch timeout, since kafka-go's 1 s default adds a second to
// every event.
func NewWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    1000,
		MaxAttempts:  2,
		WriteTimeout: 5 * time.Second,
		ReadTimeout:  5 * time.Second,
	}
}
