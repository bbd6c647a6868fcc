package tenancy

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	sharedmigrations "github.com/patchdesk/patchdesk/migrations/shared"
)

// MoveStatesActive are the states of a tier move that has not finished
// (control.tenant_moves.state other than done and aborted).
var MoveStatesActive = []string{"created", "target_ready", "replicating", "synced", "switched", "cleaned"}

// ControlVersion reports the control schema's applied migration version and
// the newest one this binary carries.
func (r *Registry) ControlVersion(ctx context.Context) (have, want int64, err error) {
	want, err = latestVersion(sharedmigrations.FS)
	if err != nil {
		return 0, 0, fmt.Errorf("control version: %w", err)
	}
	err = r.control.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM control.goose_db_version WHERE is_applied`).Scan(&have)
	if err != nil {
		return 0, want, fmt.Errorf("control version: %w", err)
	}
	return have, want, nil
}

// TenantsBehind lists the servable tenants whose schema is older than this
// binary's tenant migrations: the router answers them 503 until
// `patchdesk migrate` brings them up to date.
func (r *Registry) TenantsBehind(ctx context.Context) ([]*Tenant, error) {
	rows, err := r.control.Query(ctx, `SELECT `+tenantColumns+` FROM control.tenants
		WHERE status IN ('active', 'suspended') AND schema_version < $1 ORDER BY slug`, r.latest)
	if err != nil {
		return nil, fmt.Errorf("tenants behind: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("tenants behind: %w", err)
	}
	return out, nil
}

// MoveInfo is one unfinished tier move as the control plane records it.
type MoveInfo struct {
	ID           int64     `json:"id"`
	Slug         string    `json:"slug"`
	FromDatabase string    `json:"from_database"`
	ToDatabase   string    `json:"to_database"`
	State        string    `json:"state"`
	Error        string    `json:"error,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
	// InState is how long the move has been in its current step (since its
	// row last changed).
	InState time.Duration `json:"in_state_ns"`
}

// UnfinishedMoves lists the tier moves that are neither done nor aborted,
// oldest step first.
func (r *Registry) UnfinishedMoves(ctx context.Context) ([]MoveInfo, error) {
	rows, err := r.control.Query(ctx, `SELECT m.id, t.slug, m.from_database, m.to_database, m.state, coalesce(m.error, ''),
			m.updated_at, extract(epoch FROM now() - m.updated_at)::float8
		FROM control.tenant_moves m JOIN control.tenants t ON t.id = m.tenant_id
		WHERE m.state NOT IN ('done', 'aborted') ORDER BY m.updated_at`)
	if err != nil {
		return nil, fmt.Errorf("unfinished moves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (MoveInfo, error) {
		var m MoveInfo
		var secs float64
		err := row.Scan(&m.ID, &m.Slug, &m.FromDatabase, &m.ToDatabase, &m.State, &m.Error, &m.UpdatedAt, &secs)
		m.InState = time.Duration(secs * float64(time.Second))
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("unfinished moves: %w", err)
	}
	return out, nil
}

var (
	behindDesc = prometheus.NewDesc("patchdesk_tenants_behind",
		"Servable tenants whose schema is older than this binary's migrations (answered 503 until migrated), by database.",
		[]string{"database"}, nil)
	movesDesc = prometheus.NewDesc("patchdesk_tenant_moves",
		"Unfinished tier moves by state; failed counts those whose last step recorded an error.",
		[]string{"state", "failed"}, nil)
	moveStepDesc = prometheus.NewDesc("patchdesk_tenant_move_step_seconds",
		"Time the oldest unfinished tier move has spent in its current state (0 when none).",
		[]string{"state"}, nil)
)

// healthCollector exports the control plane's fleet health: tenants behind
// the binary and tier moves in progress. It queries the control database,
// so serve wraps it in obs.NewCachedCollector like the tenant counts.
type healthCollector struct{ r *Registry }

// HealthCollector exports tenants behind the binary's migrations and the
// tier moves in progress (count and time in the current step), read from the
// control plane at collection time.
func (r *Registry) HealthCollector() prometheus.Collector { return healthCollector{r} }

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- behindDesc
	ch <- movesDesc
	ch <- moveStepDesc
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.collectBehind(ctx, ch); err != nil {
		ch <- prometheus.NewInvalidMetric(behindDesc, err)
	}
	moves, err := c.r.UnfinishedMoves(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(movesDesc, err)
		return
	}
	// Every active state is exported, at 0 when empty, so that an alert or a
	// panel on a state never reads "no data" in a healthy fleet.
	type key struct{ state, failed string }
	counts := map[key]int{}
	oldest := map[string]time.Duration{}
	for _, s := range MoveStatesActive {
		counts[key{s, "false"}], counts[key{s, "true"}], oldest[s] = 0, 0, 0
	}
	for _, m := range moves {
		counts[key{m.State, fmt.Sprint(m.Error != "")}]++
		oldest[m.State] = max(oldest[m.State], m.InState)
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(movesDesc, prometheus.GaugeValue, float64(n), k.state, k.failed)
	}
	for s, d := range oldest {
		ch <- prometheus.MustNewConstMetric(moveStepDesc, prometheus.GaugeValue, d.Seconds(), s)
	}
}

func (c healthCollector) collectBehind(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := c.r.control.Query(ctx, `SELECT d.id, count(t.id) FROM control.databases d
		LEFT JOIN control.tenants t ON t.database_id = d.id AND t.status IN ('active', 'suspended') AND t.schema_version < $1
		GROUP BY d.id`, c.r.latest)
	if err != nil {
		return fmt.Errorf("count tenants behind: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var db string
		var n int
		if err := rows.Scan(&db, &n); err != nil {
			return fmt.Errorf("count tenants behind: %w", err)
		}
		ch <- prometheus.MustNewConstMetric(behindDesc, prometheus.GaugeValue, float64(n), db)
	}
	return rows.Err()
}

var (
	poolAcquiredDesc = prometheus.NewDesc("patchdesk_db_pool_acquired_connections",
		"Connections of a database pool currently in use, by database and pool (tx: transactions, jobs: River).",
		[]string{"database", "pool"}, nil)
	poolMaxDesc = prometheus.NewDesc("patchdesk_db_pool_max_connections",
		"Size limit of a database pool, by database and pool.", []string{"database", "pool"}, nil)
	poolWaitsDesc = prometheus.NewDesc("patchdesk_db_pool_empty_acquires_total",
		"Acquires that had to wait because the pool had no idle connection, by database and pool.",
		[]string{"database", "pool"}, nil)
	poolWaitSecondsDesc = prometheus.NewDesc("patchdesk_db_pool_acquire_wait_seconds_total",
		"Time spent waiting for a connection of a database pool, by database and pool.",
		[]string{"database", "pool"}, nil)
)

// poolCollector exports the open pools' statistics; they are in memory, so
// it needs no cache.
type poolCollector struct{ r *Registry }

// PoolCollector exports the usage of this process's database pools
// (in use, size, waits), the saturation signal of the database tier.
func (r *Registry) PoolCollector() prometheus.Collector { return poolCollector{r} }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolAcquiredDesc
	ch <- poolMaxDesc
	ch <- poolWaitsDesc
	ch <- poolWaitSecondsDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(db, kind string, st poolStat) {
		ch <- prometheus.MustNewConstMetric(poolAcquiredDesc, prometheus.GaugeValue, float64(st.acquired), db, kind)
		ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(st.max), db, kind)
		ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(st.emptyAcquires), db, kind)
		ch <- prometheus.MustNewConstMetric(poolWaitSecondsDesc, prometheus.CounterValue, st.waited.Seconds(), db, kind)
	}
	// The control pool also serves the shared tenants of the control
	// database (database "main" holds dsn_ref control).
	s := c.r.control.Stat()
	emit(controlDatabaseLabel, "tx", poolStat{s.AcquiredConns(), s.MaxConns(), s.EmptyAcquireCount(), s.EmptyAcquireWaitTime()})
	for db, st := range c.r.pools.stats() {
		emit(db, "tx", st)
	}
	for db, st := range c.r.jobPools.stats() {
		emit(db, "jobs", st)
	}
}

// controlDatabaseLabel names the control pool in pool metrics.
const controlDatabaseLabel = "control"

// poolStat is the part of pgxpool.Stat the pool metrics export.
type poolStat struct {
	acquired, max int32
	emptyAcquires int64
	waited        time.Duration
}

// stats reads the statistics of the set's own (non-shared) pools.
func (s *poolSet) stats() map[string]poolStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]poolStat{}
	for key, e := range s.entries {
		if e.shared {
			continue // the control pool, reported once as "control"
		}
		st := e.pool.Stat()
		out[key] = poolStat{st.AcquiredConns(), st.MaxConns(), st.EmptyAcquireCount(), st.EmptyAcquireWaitTime()}
	}
	return out
}
