package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/tenancy"
)

// relayLockID is the advisory lock a relay holds while it leads a database.
const relayLockID int64 = 0x7064_7265_6c61_7900 // "pdrelay"

// Publisher sends messages and returns only once the broker acknowledged
// them (kafka-go's Writer with RequiredAcks all).
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Databases gives the relay the databases to drain and a connection to each;
// *tenancy.Registry implements it.
type Databases interface {
	Databases(ctx context.Context) ([]string, error)
	WithInfraConn(ctx context.Context, databaseID string, fn func(ctx context.Context, c tenancy.InfraConn) error) error
}

// RelayConfig configures the relay.
type RelayConfig struct {
	// BatchSize bounds the events published per round trip (default 500).
	BatchSize int
	// Sweep is how often the outbox is polled without a notification (default 1s).
	Sweep time.Duration
	// Standby is how often a non-leader retries the leadership lock (default 1s).
	Standby time.Duration
	// Retention is how long published rows are kept (default 24h).
	Retention time.Duration
	Log       *slog.Logger
	// AfterPublish is a fault-injection point for tests: it runs after the
	// broker acknowledged a batch and before the rows are marked published.
	AfterPublish func() error
}

// Relay moves outbox rows to Kafka. Per database one relay leads (advisory
// lock); others wait and take over when the leader's session ends. Rows are
// marked published only after the broker acknowledged them, so a crash
// between the two publishes them again: delivery is at-least-once and
// consumers deduplicate by event id.
type Relay struct {
	cfg     RelayConfig
	dbs     Databases
	pub     Publisher
	metrics *relayMetrics
}

type relayMetrics struct {
	backlog   *prometheus.GaugeVec
	oldest    *prometheus.GaugeVec
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
	leader    *prometheus.GaugeVec
}

// NewRelay builds a relay and registers its metrics.
func NewRelay(cfg RelayConfig, dbs Databases, pub Publisher, reg prometheus.Registerer) *Relay {
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 500)
	cfg.Sweep = cmp.Or(cfg.Sweep, time.Second)
	cfg.Standby = cmp.Or(cfg.Standby, time.Second)
	cfg.Retention = cmp.Or(cfg.Retention, 24*time.Hour)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m := &relayMetrics{
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "patchdesk_outbox_backlog",
			Help: "Unpublished outbox events per database."}, []string{"database"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "patchdesk_outbox_oldest_unpublished_seconds",
			Help: "Age of the oldest unpublished outbox event per database."}, []string{"database"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchdesk_outbox_published_total",
			Help: "Outbox events published to Kafka per database."}, []string{"database"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchdesk_outbox_publish_errors_total",
			Help: "Failed publish attempts per database."}, []string{"database"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "patchdesk_outbox_relay_leader",
			Help: "1 while this process leads the relay of a database."}, []string{"database"}),
	}
	reg.MustRegister(m.backlog, m.oldest, m.published, m.errors, m.leader)
	return &Relay{cfg: cfg, dbs: dbs, pub: pub, metrics: m}
}

// Run relays every database until ctx ends, picking up databases added later.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	for {
		ids, err := r.dbs.Databases(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Log.WarnContext(ctx, "relay: list databases", "err", err)
		}
		for _, id := range ids {
			if !running[id] {
				running[id] = true
				wg.Go(func() { r.runDatabase(ctx, id) })
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second): // a tier move may have added a database
		}
	}
}

var errStandby = errors.New("another relay leads this database")

func (r *Relay) runDatabase(ctx context.Context, db string) {
	for ctx.Err() == nil {
		err := r.dbs.WithInfraConn(ctx, db, func(ctx context.Context, c tenancy.InfraConn) error {
			var leader bool
			if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, relayLockID).Scan(&leader); err != nil {
				return fmt.Errorf("take relay lock: %w", err)
			}
			if !leader {
				return errStandby
			}
			r.metrics.leader.WithLabelValues(db).Set(1)
			// Exported at 0 from the start, so that rate() and alerts on
			// publish errors see a series before the first error.
			r.metrics.errors.WithLabelValues(db).Add(0)
			defer r.metrics.leader.WithLabelValues(db).Set(0)
			r.cfg.Log.InfoContext(ctx, "relay leads database", "database", db)
			if _, err := c.Exec(ctx, "LISTEN "+Channel); err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			return r.lead(ctx, db, c)
		})
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, errStandby) {
			r.cfg.Log.WarnContext(ctx, "relay stopped leading; retrying", "database", db, "err", err)
		}
		sleep(ctx, r.cfg.Standby)
	}
}

// lead drains the outbox while this relay holds the lock: publish a batch,
// and when the outbox is empty wait for a NOTIFY or the sweep interval.
func (r *Relay) lead(ctx context.Context, db string, c tenancy.InfraConn) error {
	backoff := 100 * time.Millisecond
	var lastPrune, lastMeasure time.Time
	for ctx.Err() == nil {
		// Pruning deletes by published_at, which no index serves: once a
		// minute, not per batch (per batch it was the costliest statement
		// behind a ticket create).
		if time.Since(lastPrune) > time.Minute {
			if err := r.prune(ctx, c); err != nil {
				return err
			}
			lastPrune = time.Now()
		}
		n, err := r.publishBatch(ctx, db, c)
		var pubErr publishError
		switch {
		case errors.As(err, &pubErr):
			// Broker down: keep the lead, let the backlog grow, try again.
			r.metrics.errors.WithLabelValues(db).Inc()
			r.cfg.Log.WarnContext(ctx, "relay: publish failed; will retry", "database", db, "err", err, "backoff", backoff)
			_ = r.observe(ctx, db, c)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		case err != nil:
			return err
		}
		backoff = 100 * time.Millisecond
		if n == r.cfg.BatchSize {
			// A backlog: measure it now and then while working it off.
			if time.Since(lastMeasure) > time.Second {
				if err := r.observe(ctx, db, c); err != nil {
					return err
				}
				lastMeasure = time.Now()
			}
			continue
		}
		// A short batch read every unpublished row there was: the outbox
		// was drained as of its read, without counting it again.
		r.metrics.backlog.WithLabelValues(db).Set(0)
		r.metrics.oldest.WithLabelValues(db).Set(0)
		if err := r.wait(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// wait blocks until a NOTIFY arrives or the sweep interval passes.
func (r *Relay) wait(ctx context.Context, c tenancy.InfraConn) error {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Sweep)
	defer cancel()
	_, err := c.WaitForNotification(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() == nil {
		return fmt.Errorf("wait for outbox notification: %w", err)
	}
	// A sweep timeout is normal; if it left the connection unusable, the next
	// query fails and the relay reconnects and re-takes the lead.
	return nil
}

type publishError struct{ err error }

func (e publishError) Error() string { return "publish: " + e.err.Error() }
func (e publishError) Unwrap() error { return e.err }

type outboxRow struct {
	id       int64
	eventID  uuid.UUID
	tenantID uuid.UUID
	ticketID *uuid.UUID
	typ      string
	payload  []byte
}

// publishBatch publishes the oldest unpublished events in id order and marks
// them; it returns how many it published.
func (r *Relay) publishBatch(ctx context.Context, db string, c tenancy.InfraConn) (int, error) {
	rows, err := c.Query(ctx, `SELECT id, event_id, tenant_id, ticket_id, type, payload FROM infra.outbox
		WHERE published_at IS NULL ORDER BY id LIMIT $1`, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		err := row.Scan(&o.id, &o.eventID, &o.tenantID, &o.ticketID, &o.typ, &o.payload)
		return o, err
	})
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	msgs := make([]kafka.Message, len(batch))
	ids := make([]int64, len(batch))
	for i, o := range batch {
		key := o.tenantID.String() + ":"
		if o.ticketID != nil {
			key += o.ticketID.String()
		}
		msgs[i] = kafka.Message{Key: []byte(key), Value: o.payload, Headers: []kafka.Header{
			{Key: "event_id", Value: []byte(o.eventID.String())},
			{Key: "event_type", Value: []byte(o.typ)},
			{Key: "tenant_id", Value: []byte(o.tenantID.String())},
		}}
		ids[i] = o.id
	}
	if err := r.pub.WriteMessages(ctx, msgs...); err != nil {
		return 0, publishError{err}
	}
	if r.cfg.AfterPublish != nil {
		if err := r.cfg.AfterPublish(); err != nil {
			return 0, err
		}
	}
	// The mark commits without waiting for its WAL flush: losing it in a
	// database crash only publishes the rows again, which consumers
	// absorb (at-least-once), and a flush per batch is the relay's largest
	// cost while the outbox is busy.
	if _, err := c.Exec(ctx, `WITH marked AS (UPDATE infra.outbox SET published_at = now() WHERE id = ANY($1) RETURNING 1)
		SELECT set_config('synchronous_commit', 'off', true), (SELECT count(*) FROM marked)`, ids); err != nil {
		return 0, fmt.Errorf("mark published: %w", err)
	}
	r.metrics.published.WithLabelValues(db).Add(float64(len(batch)))
	return len(batch), nil
}

// observe updates the backlog gauges.
func (r *Relay) observe(ctx context.Context, db string, c tenancy.InfraConn) error {
	var (
		backlog int64
		age     float64
	)
	err := c.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
		FROM infra.outbox WHERE published_at IS NULL`).Scan(&backlog, &age)
	if err != nil {
		return fmt.Errorf("measure outbox: %w", err)
	}
	r.metrics.backlog.WithLabelValues(db).Set(float64(backlog))
	r.metrics.oldest.WithLabelValues(db).Set(age)
	return nil
}

// prune deletes rows published longer ago than the retention.
func (r *Relay) prune(ctx context.Context, c tenancy.InfraConn) error {
	if _, err := c.Exec(ctx, `DELETE FROM infra.outbox WHERE published_at < now() - make_interval(secs => $1)`,
		r.cfg.Retention.Seconds()); err != nil {
		return fmt.Errorf("prune outbox: %w", err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
