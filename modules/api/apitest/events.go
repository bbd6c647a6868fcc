package apitest

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/outbox"
)

// Events runs PatchDesk's background side for a test server: an embedded
// Kafka-protocol broker reached over TCP, the outbox relay, the consumer
// groups and the delivery jobs. Broker and relay can be stopped and started
// again to test failures.
type Events struct {
	t       testing.TB
	s       *Server
	addr    string
	dir     string
	broker  *bus.Broker
	workers *api.Workers
	mu      sync.Mutex
	relay   context.CancelFunc
	relayWG sync.WaitGroup
	groups  map[string]*member
}

// member is a running consumer-group member.
type member struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// StartEvents starts the broker, consumers and job workers, and a relay.
func (s *Server) StartEvents(t testing.TB) *Events {
	t.Helper()
	e := &Events{t: t, s: s, dir: filepath.Join(t.TempDir(), "kafka"), addr: "127.0.0.1:0"}
	e.StartBroker()
	ctx, cancel := context.WithCancel(context.Background())
	workers, err := api.Background(s.App, s.Reg, obs.NewMetrics(), s.log, api.BackgroundConfig{
		Brokers:  []string{e.addr},
		Consumer: bus.ConsumerConfig{Backoff: 20 * time.Millisecond, MaxAttempts: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.workers, e.groups = workers, map[string]*member{}
	var wg sync.WaitGroup
	wg.Go(func() { _ = workers.Jobs(ctx) })
	for _, g := range workers.Groups() {
		e.StartConsumer(g)
	}
	e.StartRelay(outbox.RelayConfig{})
	t.Cleanup(func() {
		e.StopRelay()
		for _, g := range workers.Groups() {
			e.StopConsumer(g)
		}
		cancel()
		wg.Wait()
		e.StopBroker()
	})
	return e
}

// StartConsumer joins a member of a consumer group.
func (e *Events) StartConsumer(group string) {
	e.t.Helper()
	run, err := e.workers.Consumer(group)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cancel: cancel, done: make(chan struct{})}
	e.mu.Lock()
	e.groups[group] = m
	e.mu.Unlock()
	go func() {
		defer close(m.done)
		_ = run(ctx)
	}()
}

// StopConsumer stops the group's member, as if its process went down.
func (e *Events) StopConsumer(group string) {
	e.mu.Lock()
	m := e.groups[group]
	delete(e.groups, group)
	e.mu.Unlock()
	if m != nil {
		m.cancel()
		<-m.done
	}
}

// Brokers returns the broker address.
func (e *Events) Brokers() []string { return []string{e.addr} }

// StartBroker starts (or restarts, on the same port and data) the broker.
func (e *Events) StartBroker() {
	e.t.Helper()
	var err error
	for range 100 { // the old listener may linger briefly
		if e.broker, err = bus.StartBroker(e.addr, e.dir); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("start broker: %v", err)
	}
	e.addr = e.broker.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureTopics(ctx, e.Brokers()); err != nil {
		e.t.Fatalf("ensure topics: %v", err)
	}
}

// StopBroker stops the broker; clients see connections refused.
func (e *Events) StopBroker() {
	if e.broker != nil {
		e.broker.Close()
		e.broker = nil
		// Wait until the port is really closed.
		for range 100 {
			c, err := net.DialTimeout("tcp", e.addr, 100*time.Millisecond)
			if err != nil {
				return
			}
			c.Close()
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// StartRelay starts a relay with cfg (sweeping fast, for tests).
func (e *Events) StartRelay(cfg outbox.RelayConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cfg.Sweep == 0 {
		cfg.Sweep = 100 * time.Millisecond
	}
	if cfg.Standby == 0 {
		cfg.Standby = 100 * time.Millisecond
	}
	cfg.Log = e.s.log
	ctx, cancel := context.WithCancel(context.Background())
	e.relay = cancel
	writer := bus.NewWriter(e.Brokers(), bus.TopicEvents)
	relay := outbox.NewRelay(cfg, e.s.Reg, writer, prometheus.NewRegistry())
	e.relayWG.Go(func() {
		defer writer.Close()
		_ = relay.Run(ctx)
	})
}

// StopRelay stops the relay, as if its process died.
func (e *Events) StopRelay() {
	e.mu.Lock()
	cancel := e.relay
	e.relay = nil
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		e.relayWG.Wait()
	}
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
