// Package move moves a tenant between databases while it keeps serving:
// logical replication of the tenant's schema, a sub-second write freeze to
// switch, row-for-row verification, every step recorded in
// control.tenant_moves and resumable (docs/adr/0005-tier-moves.md).
package move

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchdesk/patchdesk/tenancy"
)

// Move states, in order. A move interrupted in any state can be resumed
// (each step is idempotent) or, before "switched", aborted.
const (
	Created     = "created"      // recorded; nothing built yet
	TargetReady = "target_ready" // schema, role and migrations exist in the target, empty
	Replicating = "replicating"  // publication, slot and subscription exist; initial copy running
	Synced      = "synced"       // initial copy done; changes stream continuously
	Switched    = "switched"     // placement flipped; the source copy is sealed
	Cleaned     = "cleaned"      // replication removed; the source copy retired
	Done        = "done"
	Aborted     = "aborted"
)

// markerTable is replicated with the tenant's tables during a move: a token
// written to it once the freeze holds the tenant's locks proves, when it
// shows up in the target, that every earlier commit has been applied there.
const markerTable = tenancy.MoveMarkerTable

// Mover runs tier moves for a registry.
type Mover struct {
	reg *tenancy.Registry
	op  tenancy.Operator
}

// New returns a Mover working on the registry's databases.
func New(reg *tenancy.Registry) *Mover { return &Mover{reg: reg, op: reg.Operator()} }

// Options tunes a move.
type Options struct {
	// Retain keeps the retired source copy this long before it is dropped (default 24h).
	Retain time.Duration
	// SyncTimeout bounds the initial copy (default 1h).
	SyncTimeout time.Duration
	// CatchUpTimeout bounds the wait for the last changes while writes are frozen (default 5s).
	CatchUpTimeout time.Duration
	// Fault, for tests, runs before each step and may fail it, as a crash there would.
	Fault func(step string) error
	Log   *slog.Logger
}

func (o *Options) defaults() {
	o.Retain = cmp.Or(o.Retain, 24*time.Hour)
	o.SyncTimeout = cmp.Or(o.SyncTimeout, time.Hour)
	o.CatchUpTimeout = cmp.Or(o.CatchUpTimeout, 5*time.Second)
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Move is one row of control.tenant_moves.
type Move struct {
	ID       int64     `json:"id"`
	TenantID uuid.UUID `json:"tenant_id"`
	Slug     string    `json:"slug"`
	From     string    `json:"from_database"`
	To       string    `json:"to_database"`
	State    string    `json:"state"`
	FreezeMS *int      `json:"freeze_ms"`
	Error    *string   `json:"error"`
}

// name is the move's publication, slot and subscription name: slots and
// subscriptions are cluster-wide, so it carries the tenant id too.
func (m *Move) name() string {
	return "pdm_" + strings.ReplaceAll(m.TenantID.String(), "-", "") + "_" + strconv.FormatInt(m.ID, 10)
}

// ErrFinished refuses to abort a move whose switch already happened.
var ErrFinished = errors.New("the move has switched; move the tenant back instead")

// Start moves a tenant to another registered database while it keeps
// serving, and runs the move to completion.
func (mv *Mover) Start(ctx context.Context, slug, toDatabaseID string, opts Options) (*Move, error) {
	t, err := mv.reg.Lookup(ctx, slug)
	if err != nil {
		return nil, err
	}
	if t.DatabaseID == toDatabaseID {
		return nil, fmt.Errorf("move %s: already in database %s", slug, toDatabaseID)
	}
	if t.SchemaVersion != mv.reg.LatestVersion() {
		return nil, fmt.Errorf("move %s: schema at version %d, not %d: run migrate first", slug, t.SchemaVersion, mv.reg.LatestVersion())
	}
	var id int64
	err = mv.op.Control().QueryRow(ctx, `INSERT INTO control.tenant_moves (tenant_id, from_database, to_database, state)
		VALUES ($1, $2, $3, $4) RETURNING id`, t.ID, t.DatabaseID, toDatabaseID, Created).Scan(&id)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("move %s: another move of this tenant is unfinished; resume or abort it", slug)
	}
	if err != nil {
		return nil, fmt.Errorf("move %s: %w", slug, err)
	}
	mv.op.Audit(ctx, t, "tenant.move_started", map[string]any{"move": id, "from": t.DatabaseID, "to": toDatabaseID})
	return mv.Resume(ctx, id, opts)
}

// Load reads a move.
func (mv *Mover) Load(ctx context.Context, id int64) (*Move, error) {
	var m Move
	err := mv.op.Control().QueryRow(ctx, `SELECT m.id, m.tenant_id, t.slug, m.from_database, m.to_database, m.state, m.freeze_ms, m.error
		FROM control.tenant_moves m JOIN control.tenants t ON t.id = m.tenant_id WHERE m.id = $1`, id).
		Scan(&m.ID, &m.TenantID, &m.Slug, &m.From, &m.To, &m.State, &m.FreezeMS, &m.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("move %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load move %d: %w", id, err)
	}
	return &m, nil
}

func (mv *Mover) setMoveState(ctx context.Context, m *Move, state string) error {
	if _, err := mv.op.Control().Exec(ctx, `UPDATE control.tenant_moves SET state = $2, error = NULL, updated_at = now() WHERE id = $1`,
		m.ID, state); err != nil {
		return fmt.Errorf("record move state: %w", err)
	}
	m.State = state
	return nil
}

func (mv *Mover) moveFailed(ctx context.Context, m *Move, cause error) {
	msg := cause.Error()
	if _, err := mv.op.Control().Exec(context.WithoutCancel(ctx), `UPDATE control.tenant_moves SET error = $2, updated_at = now() WHERE id = $1`,
		m.ID, msg); err != nil {
		mv.op.Log().ErrorContext(ctx, "record move failure", "move", m.ID, "tenant", m.Slug, "cause", msg, "err", err)
	}
}

// moveEnv is what the steps of a move work with.
type moveEnv struct {
	m        *Move
	t        *tenancy.Tenant // the tenant as placed in the source
	src, tgt *pgxpool.Pool
	tables   []string // the tenant's tables, without the marker
	opts     Options
	release  func() // ends the leases on src and tgt
	// freezeKey is the tenant's freeze lock (tenancy.Operator.FreezeKey).
	freezeKey [2]int32
}

// Resume continues a move from its recorded state to the end.
func (mv *Mover) Resume(ctx context.Context, id int64, opts Options) (*Move, error) {
	opts.defaults()
	m, err := mv.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	steps := []struct {
		from, to, name string
		run            func(context.Context, *moveEnv) error
	}{
		{Created, TargetReady, "prepare target", mv.prepareTarget},
		{TargetReady, Replicating, "start replication", mv.startReplication},
		{Replicating, Synced, "initial copy", mv.waitSynced},
		{Synced, Switched, "switch", mv.freezeAndSwitch},
		{Switched, Cleaned, "clean up", mv.cleanUp},
	}
	for _, st := range steps {
		if m.State != st.from {
			continue
		}
		env, err := mv.moveEnv(ctx, m, opts)
		if err == nil {
			err = mv.runStep(ctx, env, st.name, st.from, st.run)
		}
		if err == nil && st.to != Switched { // the switch records its own state atomically with the flip
			err = mv.setMoveState(ctx, m, st.to)
		}
		if err != nil {
			mv.moveFailed(ctx, m, err)
			return m, fmt.Errorf("move %d (%s) at %s: %w", m.ID, m.Slug, st.name, err)
		}
		m.State = st.to
	}
	if m.State == Cleaned {
		if err := mv.setMoveState(ctx, m, Done); err != nil {
			return m, err
		}
		t, err := mv.op.TenantByID(ctx, m.TenantID)
		switch {
		case err == nil:
			mv.op.Audit(ctx, t, "tenant.moved", map[string]any{"move": m.ID, "from": m.From, "to": m.To, "freeze_ms": m.FreezeMS})
		case !errors.Is(err, tenancy.ErrTenantNotFound): // deleted meanwhile: nothing to audit
			return m, fmt.Errorf("move %d (%s): audit: %w", m.ID, m.Slug, err)
		}
	}
	return mv.Load(ctx, id)
}

// runStep runs one step of a move with its pools leased, after the test
// fault hook.
func (mv *Mover) runStep(ctx context.Context, env *moveEnv, name, state string, run func(context.Context, *moveEnv) error) error {
	defer env.release()
	if env.opts.Fault != nil {
		if err := env.opts.Fault(state); err != nil {
			return err
		}
	}
	start := time.Now()
	err := run(ctx, env)
	env.opts.Log.InfoContext(ctx, "move step", "move", env.m.ID, "tenant", env.m.Slug, "step", name, "took", time.Since(start), "err", err)
	return err
}

func (mv *Mover) moveEnv(ctx context.Context, m *Move, opts Options) (*moveEnv, error) {
	t, err := mv.op.TenantByID(ctx, m.TenantID)
	if err != nil {
		return nil, err
	}
	// Leased for the step, which may poll for an hour: no idling under it.
	src, releaseSrc, err := mv.op.Pool(ctx, m.From)
	if err != nil {
		return nil, err
	}
	tgt, releaseTgt, err := mv.op.Pool(ctx, m.To)
	if err != nil {
		releaseSrc()
		return nil, err
	}
	release := func() { releaseSrc(); releaseTgt() }
	// Before the switch the tenant lives in From; afterwards in To.
	home := src
	if t.DatabaseID == m.To {
		home = tgt
	}
	rows, err := home.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> $2 ORDER BY c.relname`, t.Schema, markerTable)
	if err != nil {
		release()
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		release()
		return nil, fmt.Errorf("list tenant tables: %w", err)
	}
	hi, lo := mv.op.FreezeKey(t)
	return &moveEnv{m: m, t: t, src: src, tgt: tgt, tables: tables, opts: opts, release: release, freezeKey: [2]int32{hi, lo}}, nil
}

func (e *moveEnv) qualified(table string) string { return pgx.Identifier{e.t.Schema, table}.Sanitize() }

func (e *moveEnv) tableList() string {
	q := make([]string, len(e.tables))
	for i, tb := range e.tables {
		q[i] = e.qualified(tb)
	}
	return strings.Join(q, ", ")
}

// prepareTarget builds an empty copy of the tenant's schema in the target:
// role, schema, migrations at the same version, tables emptied (the initial
// copy brings their rows), and the marker table.
func (mv *Mover) prepareTarget(ctx context.Context, e *moveEnv) error {
	if err := dropSubscription(ctx, e.tgt, e.src, e.m.name()); err != nil {
		return err
	}
	if _, err := e.tgt.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{e.t.Schema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("clear target schema: %w", err)
	}
	if err := mv.op.BuildSchema(ctx, e.tgt, e.t); err != nil {
		return fmt.Errorf("build target schema: %w", err)
	}
	schema, role := pgx.Identifier{e.t.Schema}.Sanitize(), pgx.Identifier{e.t.Role}.Sanitize()
	return pgx.BeginFunc(ctx, e.tgt, func(tx pgx.Tx) error {
		// Replica mode: the append-only triggers must not stop this TRUNCATE.
		stmts := []string{
			`SET LOCAL session_replication_role = replica`,
			`REVOKE ALL ON ` + pgx.Identifier{e.t.Schema, "goose_db_version"}.Sanitize() + ` FROM ` + role,
			`TRUNCATE ` + e.tableList(),
			`CREATE TABLE ` + schema + `.` + markerTable + ` (id int PRIMARY KEY, token uuid NOT NULL)`,
			`REVOKE ALL ON ` + schema + `.` + markerTable + ` FROM ` + role,
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("prepare target: %w", err)
			}
		}
		return nil
	})
}

// startReplication publishes the tenant's schema from the source and
// subscribes the target to it. The slot is created separately because a
// subscription cannot create its slot on the server it runs on.
func (mv *Mover) startReplication(ctx context.Context, e *moveEnv) error {
	name := e.m.name()
	schema, role := pgx.Identifier{e.t.Schema}.Sanitize(), pgx.Identifier{e.t.Role}.Sanitize()
	src := []string{
		`CREATE TABLE IF NOT EXISTS ` + schema + `.` + markerTable + ` (id int PRIMARY KEY, token uuid NOT NULL)`,
		`REVOKE ALL ON ` + schema + `.` + markerTable + ` FROM ` + role,
	}
	for _, s := range src {
		if _, err := e.src.Exec(ctx, s); err != nil {
			return fmt.Errorf("prepare source: %w", err)
		}
	}
	var exists bool
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("find publication: %w", err)
	}
	if !exists {
		if _, err := e.src.Exec(ctx, `CREATE PUBLICATION `+name+` FOR TABLES IN SCHEMA `+schema); err != nil {
			return fmt.Errorf("create publication: %w", err)
		}
	}
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("find slot: %w", err)
	}
	if !exists {
		if _, err := e.src.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, name); err != nil {
			return fmt.Errorf("create replication slot: %w", err)
		}
	}
	if err := e.tgt.QueryRow(ctx, subscriptionExists, name).Scan(&exists); err != nil {
		return fmt.Errorf("find subscription: %w", err)
	}
	if !exists {
		sql, err := createSubscriptionSQL(name, e.src.Config().ConnString(), "copy_data = true")
		if err != nil {
			return err
		}
		if _, err := e.tgt.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create subscription: %w", err)
		}
	}
	return nil
}

// createSubscriptionSQL is the CREATE SUBSCRIPTION of a move (name is made
// of hex digits and an id, never user input). The connection string comes
// from the source pool's DSN, rebuilt as a URL by net/url, so that any
// character of a password is percent-encoded for libpq, and then quoted as
// an SQL string literal (quotes doubled; standard_conforming_strings keeps
// backslashes literal). CREATE SUBSCRIPTION takes no bind parameters.
func createSubscriptionSQL(name, srcDSN, with string) (string, error) {
	conninfo, err := conninfoURL(srcDSN)
	if err != nil {
		return "", fmt.Errorf("create subscription: %w", err)
	}
	return `CREATE SUBSCRIPTION ` + name + ` CONNECTION ` + quoteLiteral(conninfo) + ` PUBLICATION ` + name +
		` WITH (create_slot = false, slot_name = ` + quoteLiteral(name) + `, ` + with + `)`, nil
}

// conninfoURL rewrites a DSN (URL or keyword/value) as a postgres:// URL.
// A URL keeps its parameters; keyword/value DSNs are parsed by pgconn and
// keep host, port, user, password, database and whether TLS is used.
func conninfoURL(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse source dsn: %w", err)
		}
		return u.String(), nil // url.String percent-encodes what the input left raw
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("parse source dsn: %w", err)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), Path: "/" + cfg.Database}
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory goes in the host parameter
		u.Host = ""
	}
	u.User = url.UserPassword(cfg.User, cfg.Password)
	q := url.Values{}
	if strings.HasPrefix(cfg.Host, "/") {
		q.Set("host", cfg.Host)
		q.Set("port", strconv.Itoa(int(cfg.Port)))
	}
	q.Set("sslmode", sslMode(cfg))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// sslMode recovers the sslmode pgconn derived its TLS settings from, as
// far as a subscription needs it.
func sslMode(cfg *pgconn.Config) string {
	if cfg.TLSConfig == nil {
		return "disable"
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig == nil {
			return "prefer"
		}
	}
	return "require"
}

// quoteLiteral quotes s as an SQL string literal under
// standard_conforming_strings (the default since PostgreSQL 9.1).
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// waitSynced waits until the initial copy of every table has finished.
func (mv *Mover) waitSynced(ctx context.Context, e *moveEnv) error {
	deadline := time.Now().Add(e.opts.SyncTimeout)
	for {
		var pending, total int
		err := e.tgt.QueryRow(ctx, `SELECT count(*) FILTER (WHERE sr.srsubstate <> 'r'), count(*)
			FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid WHERE s.subname = $1`, e.m.name()).Scan(&pending, &total)
		if err != nil {
			return fmt.Errorf("check initial copy: %w", err)
		}
		if total == len(e.tables)+1 && pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("initial copy not done after %s (%d of %d tables pending)", e.opts.SyncTimeout, pending, total)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freezeAndSwitch is the only moment requests wait. Holding the tenant's
// freeze lock (no tenant transaction runs; new ones queue), it hands the
// tenant's unpublished outbox rows to the target, waits for the last changes
// to replicate, verifies every table, advances sequences, seals the source
// (its tenant role loses all rights, so queued transactions fail there and
// tenancy.Tx retries them on the new placement), then flips the placement
// and tells every process.
func (mv *Mover) freezeAndSwitch(ctx context.Context, e *moveEnv) error {
	// The freeze holds back every tenant transaction, which hold pooled
	// connections while they wait: the mover must not need the pool itself.
	conns, err := e.ownConns(ctx)
	if err != nil {
		return err
	}
	defer conns.close(ctx)
	tx, frozen, err := e.freeze(ctx, conns.freeze)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	phases := map[string]time.Duration{"lock": time.Since(frozen).Round(time.Millisecond)}
	phase := func(name string, fn func() error) error {
		start := time.Now()
		err := fn()
		phases[name] = time.Since(start).Round(time.Millisecond)
		return err
	}
	for _, p := range []struct {
		name string
		fn   func() error
	}{
		{"outbox", func() error { return mv.handOverOutbox(ctx, e, tx, conns.target) }},
		{"catch-up", func() error { return e.awaitMarker(ctx, conns.marker, conns.target) }},
		{"verify", func() error { return e.verify(ctx, tx, conns.target) }},
		{"sequences", func() error { return e.advanceSequences(ctx, conns.target) }},
		{"seal", func() error { return sealSchema(ctx, tx, e.t) }},
		{"commit", func() error { return tx.Commit(ctx) }},
	} {
		if err != nil {
			break
		}
		err = phase(p.name, p.fn)
	}
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	err = phase("flip", func() error { return mv.flipPlacement(ctx, e, frozen) })
	e.opts.Log.InfoContext(ctx, "move freeze", "move", e.m.ID, "tenant", e.t.Slug, "total", time.Since(frozen), "phases", phases)
	return err
}

// moveConns are connections a freeze opens for itself.
type moveConns struct {
	freeze, marker, target *pgx.Conn
}

func (c *moveConns) close(ctx context.Context) {
	for _, conn := range []*pgx.Conn{c.freeze, c.marker, c.target} {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
}

func (e *moveEnv) ownConns(ctx context.Context) (*moveConns, error) {
	c := &moveConns{}
	var err error
	for _, x := range []struct {
		dst  **pgx.Conn
		pool *pgxpool.Pool
	}{{&c.freeze, e.src}, {&c.marker, e.src}, {&c.target, e.tgt}} {
		if *x.dst, err = pgx.ConnectConfig(ctx, x.pool.Config().ConnConfig.Copy()); err != nil {
			c.close(ctx)
			return nil, fmt.Errorf("connect for the freeze: %w", err)
		}
	}
	return c, nil
}

// freeze takes the tenant's freeze lock exclusively in a new source
// transaction: it waits for in-flight tenant transactions, and new ones queue
// behind it. A short lock_timeout keeps a long-running transaction from
// holding the queue up: the attempt is given up and retried. It returns the
// transaction and when the queueing began.
func (e *moveEnv) freeze(ctx context.Context, conn *pgx.Conn) (pgx.Tx, time.Time, error) {
	hi, lo := e.freezeKey[0], e.freezeKey[1]
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("begin freeze: %w", err)
		}
		start := time.Now()
		_, err = tx.Exec(ctx, `SET LOCAL lock_timeout = '300ms'`)
		if err == nil {
			_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, hi, lo)
		}
		if err == nil {
			return tx, start, nil
		}
		_ = tx.Rollback(context.WithoutCancel(ctx))
		last = err
		select {
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, time.Time{}, fmt.Errorf("freeze writes: %w", last)
}

// handOverOutbox moves the tenant's unpublished outbox rows to the target's
// outbox (same event ids, so consumers deduplicate if the relay also
// published some), deleting them from the source in the freeze transaction.
func (mv *Mover) handOverOutbox(ctx context.Context, e *moveEnv, tx pgx.Tx, target *pgx.Conn) error {
	rows, err := tx.Query(ctx, `DELETE FROM infra.outbox WHERE tenant_id = $1 AND published_at IS NULL
		RETURNING event_id, tenant_id, ticket_id, type, payload, created_at`, e.t.ID)
	if err != nil {
		return fmt.Errorf("take outbox rows: %w", err)
	}
	type event struct {
		id, tenant uuid.UUID
		ticket     *uuid.UUID
		typ        string
		payload    []byte
		at         time.Time
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var ev event
		return ev, row.Scan(&ev.id, &ev.tenant, &ev.ticket, &ev.typ, &ev.payload, &ev.at)
	})
	if err != nil {
		return fmt.Errorf("take outbox rows: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, ev := range events {
		batch.Queue(`INSERT INTO infra.outbox (event_id, tenant_id, ticket_id, type, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`, ev.id, ev.tenant, ev.ticket, ev.typ, ev.payload, ev.at)
	}
	batch.Queue(`SELECT pg_notify('patchdesk_outbox', '')`)
	if err := target.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("hand over outbox rows: %w", err)
	}
	return nil
}

// awaitMarker writes a fresh token to the source marker (a commit after
// every tenant write, since writers are locked out) and waits for it in the
// target: then the target has applied everything.
func (e *moveEnv) awaitMarker(ctx context.Context, src, tgt *pgx.Conn) error {
	token := uuid.New()
	marker := pgx.Identifier{e.t.Schema, markerTable}.Sanitize()
	if _, err := src.Exec(ctx, `INSERT INTO `+marker+` (id, token) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token`, token); err != nil {
		return fmt.Errorf("write move marker: %w", err)
	}
	deadline := time.Now().Add(e.opts.CatchUpTimeout)
	for {
		var got uuid.UUID
		err := tgt.QueryRow(ctx, `SELECT token FROM `+marker+` WHERE id = 1`).Scan(&got)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read move marker: %w", err)
		}
		if got == token {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target did not catch up within %s", e.opts.CatchUpTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checksumSQL fingerprints a table: row count and an order-independent sum
// of row hashes (so neither side sorts), hashing stored columns with their
// types' own hash functions rather than formatting rows as text. Generated
// columns are left out: they are recomputed from the others.
func checksumSQL(table string, columns []string) string {
	return `SELECT count(*), coalesce(sum(hash_record_extended(ROW(` + strings.Join(columns, ", ") + `), 0)::numeric), 0)::text FROM ` + table
}

// storedColumns lists each table's stored (not generated) columns, quoted.
func (e *moveEnv) storedColumns(ctx context.Context, tx pgx.Tx) (map[string][]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY c.relname, a.attnum`, e.t.Schema)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	out := map[string][]string{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list columns: %w", err)
		}
		out[table] = append(out[table], pgx.Identifier{column}.Sanitize())
	}
	return out, rows.Err()
}

// verify compares count and checksum of every table in source (inside the
// freeze) and target, both sides concurrently.
func (e *moveEnv) verify(ctx context.Context, tx pgx.Tx, target *pgx.Conn) error {
	type sum struct {
		n int64
		h string
	}
	cols, err := e.storedColumns(ctx, tx)
	if err != nil {
		return err
	}
	src, tgt := make([]sum, len(e.tables)), make([]sum, len(e.tables))
	var tgtErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		tgtErr = pgx.BeginFunc(ctx, target, func(ttx pgx.Tx) error {
			if _, err := ttx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
				return err
			}
			for i, tb := range e.tables {
				if err := ttx.QueryRow(ctx, checksumSQL(e.qualified(tb), cols[tb])).Scan(&tgt[i].n, &tgt[i].h); err != nil {
					return fmt.Errorf("checksum target %s: %w", tb, err)
				}
			}
			return nil
		})
	})
	var srcErr error
	if _, srcErr = tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); srcErr == nil {
		for i, tb := range e.tables {
			if srcErr = tx.QueryRow(ctx, checksumSQL(e.qualified(tb), cols[tb])).Scan(&src[i].n, &src[i].h); srcErr != nil {
				srcErr = fmt.Errorf("checksum source %s: %w", tb, srcErr)
				break
			}
		}
	}
	wg.Wait()
	if err := errors.Join(srcErr, tgtErr); err != nil {
		return err
	}
	for i, tb := range e.tables {
		if src[i] != tgt[i] {
			return fmt.Errorf("verify %s: source has %d rows (%s), target %d (%s)", tb, src[i].n, src[i].h, tgt[i].n, tgt[i].h)
		}
	}
	return nil
}

// advanceSequences sets the target's identity sequences past the copied rows
// (logical replication copies rows, not sequences).
func (e *moveEnv) advanceSequences(ctx context.Context, target *pgx.Conn) error {
	rows, err := target.Query(ctx, `SELECT c.relname, a.attname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND a.attidentity <> '' AND NOT a.attisdropped`, e.t.Schema)
	if err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	type col struct{ table, column string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.table, &c.column)
	})
	if err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	for _, c := range cols {
		table, column := e.qualified(c.table), pgx.Identifier{c.column}.Sanitize()
		if _, err := target.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(`+column+`), 0) + 1, false) FROM `+table,
			table, c.column); err != nil {
			return fmt.Errorf("advance sequence of %s: %w", c.table, err)
		}
	}
	return nil
}

// sealSchema takes every right on the schema away from the tenant's role:
// whatever still reaches this copy fails (and tenancy.Tx follows the move).
func sealSchema(ctx context.Context, tx pgx.Tx, t *tenancy.Tenant) error {
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	for _, s := range []string{
		`REVOKE ALL ON ALL TABLES IN SCHEMA ` + schema + ` FROM ` + role,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + schema + ` FROM ` + role,
		`REVOKE ALL ON SCHEMA ` + schema + ` FROM ` + role,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("seal source: %w", err)
		}
	}
	return nil
}

// unsealSchema gives the tenant's role its rights back (aborting a move).
func unsealSchema(ctx context.Context, pool *pgxpool.Pool, t *tenancy.Tenant) error {
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{
			`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
			`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ` + schema + ` TO ` + role,
			`REVOKE ALL ON ` + pgx.Identifier{t.Schema, "goose_db_version"}.Sanitize() + ` FROM ` + role,
		} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("unseal source: %w", err)
			}
		}
		var marker bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.Schema+"."+markerTable).Scan(&marker); err != nil {
			return err
		}
		if marker {
			_, err := tx.Exec(ctx, `REVOKE ALL ON `+schema+`.`+markerTable+` FROM `+role)
			return err
		}
		return nil
	})
}

// flipPlacement points the tenant at the target, records the switch and the
// freeze time in the same control transaction, and notifies every process.
func (mv *Mover) flipPlacement(ctx context.Context, e *moveEnv, frozen time.Time) error {
	return pgx.BeginFunc(ctx, mv.op.Control(), func(tx pgx.Tx) error {
		var kind string
		if err := tx.QueryRow(ctx, `SELECT kind FROM control.databases WHERE id = $1`, e.m.To).Scan(&kind); err != nil {
			return fmt.Errorf("target database: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE control.tenants SET database_id = $2, tier = $3, updated_at = now() WHERE id = $1`,
			e.t.ID, e.m.To, kind); err != nil {
			return fmt.Errorf("flip placement: %w", err)
		}
		freeze := int(time.Since(frozen).Milliseconds())
		if _, err := tx.Exec(ctx, `UPDATE control.tenant_moves SET state = $2, freeze_ms = $3, error = NULL, updated_at = now()
			WHERE id = $1`, e.m.ID, Switched, freeze); err != nil {
			return fmt.Errorf("record switch: %w", err)
		}
		e.m.FreezeMS = &freeze
		return mv.op.NotifyChangedTx(ctx, tx, e.t.Slug)
	})
}

// subscriptionExists looks a subscription up in the pool's own database
// (pg_subscription is shared by the whole cluster).
const subscriptionExists = `SELECT EXISTS (SELECT 1 FROM pg_subscription
	WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// dropSubscription removes a move's subscription from the target without
// waiting on the source. Its main slot is left for dropPublication. Slots of
// table copies still in progress are dropped here first: DROP SUBSCRIPTION
// would otherwise wait for them to go inactive, which on a single cluster
// can be forever.
func dropSubscription(ctx context.Context, tgt, src *pgxpool.Pool, name string) error {
	var oid uint32
	err := tgt.QueryRow(ctx, `SELECT oid FROM pg_subscription
		WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find subscription: %w", err)
	}
	for _, s := range []string{`ALTER SUBSCRIPTION ` + name + ` DISABLE`, `ALTER SUBSCRIPTION ` + name + ` SET (slot_name = NONE)`} {
		if _, err := tgt.Exec(ctx, s); err != nil {
			return fmt.Errorf("drop subscription: %w", err)
		}
	}
	if err := dropSlots(ctx, src, "pg_"+strconv.FormatUint(uint64(oid), 10)+"_sync_%"); err != nil {
		return err
	}
	conn, err := tgt.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("drop subscription: %w", err)
	}
	defer conn.Release()
	// Bounded, whatever the source does; the session setting is reset before release.
	for _, s := range []string{`SET statement_timeout = '30s'`, `DROP SUBSCRIPTION ` + name, `RESET statement_timeout`} {
		if _, err := conn.Exec(ctx, s); err != nil {
			_, _ = conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`)
			return fmt.Errorf("drop subscription: %w", err)
		}
	}
	return nil
}

// dropSlots drops the replication slots matching a LIKE pattern on a
// server, ending the walsenders that still hold them.
func dropSlots(ctx context.Context, pool *pgxpool.Pool, pattern string) error {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name LIKE $1 AND active_pid IS NOT NULL`, pattern); err != nil {
			last = err
		}
		_, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE slot_name LIKE $1 AND NOT active`, pattern)
		var left int
		if err == nil {
			err = pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, pattern).Scan(&left)
		}
		if err == nil && left == 0 {
			return nil
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("drop replication slots %s: %v", pattern, last)
}

// dropPublication removes a move's slot and publication from the source.
func dropPublication(ctx context.Context, pool *pgxpool.Pool, name string) error {
	// The walsender of the subscription just dropped may still hold the slot.
	if err := dropSlots(ctx, pool, name); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `DROP PUBLICATION IF EXISTS `+name); err != nil {
		return fmt.Errorf("drop publication: %w", err)
	}
	return nil
}

// cleanUp removes the replication and retires the sealed source copy: the
// schema is renamed and recorded, to be dropped after the retention.
func (mv *Mover) cleanUp(ctx context.Context, e *moveEnv) error {
	if err := dropSubscription(ctx, e.tgt, e.src, e.m.name()); err != nil {
		return err
	}
	if err := dropPublication(ctx, e.src, e.m.name()); err != nil {
		return err
	}
	if _, err := e.tgt.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{e.t.Schema, markerTable}.Sanitize()); err != nil {
		return fmt.Errorf("drop marker: %w", err)
	}
	retired := retiredName(e.t.Schema, e.m.ID)
	var exists bool
	if err := e.src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, e.t.Schema).Scan(&exists); err != nil {
		return fmt.Errorf("find source schema: %w", err)
	}
	if !exists {
		return nil // renamed by an earlier attempt
	}
	return pgx.BeginFunc(ctx, e.src, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER SCHEMA `+pgx.Identifier{e.t.Schema}.Sanitize()+` RENAME TO `+pgx.Identifier{retired}.Sanitize()); err != nil {
			return fmt.Errorf("retire source copy: %w", err)
		}
		_, err := mv.op.Control().Exec(ctx, `INSERT INTO control.retired_copies (tenant_id, database_id, schema_name, drop_after)
			VALUES ($1, $2, $3, now() + make_interval(secs => $4))`, e.t.ID, e.m.From, retired, e.opts.Retain.Seconds())
		return err
	})
}

func retiredName(schema string, moveID int64) string {
	return schema + "_r" + strconv.FormatInt(moveID, 10)
}

// Abort rolls an unfinished move back: the replication and the target
// copy are removed and the source copy is unsealed. A move that switched
// cannot be aborted (the target has taken writes); move the tenant back.
func (mv *Mover) Abort(ctx context.Context, id int64) (*Move, error) {
	m, err := mv.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	switch m.State {
	case Aborted:
		return m, nil
	case Switched, Cleaned, Done:
		return m, fmt.Errorf("abort move %d: %w", id, ErrFinished)
	}
	e, err := mv.moveEnv(ctx, m, Options{})
	if err != nil {
		return m, err
	}
	defer e.release()
	if err := dropSubscription(ctx, e.tgt, e.src, m.name()); err != nil {
		return m, err
	}
	if err := dropPublication(ctx, e.src, m.name()); err != nil {
		return m, err
	}
	if _, err := e.tgt.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{e.t.Schema}.Sanitize()+` CASCADE`); err != nil {
		return m, fmt.Errorf("drop target copy: %w", err)
	}
	if _, err := e.src.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{e.t.Schema, markerTable}.Sanitize()); err != nil {
		return m, fmt.Errorf("drop marker: %w", err)
	}
	if err := unsealSchema(ctx, e.src, e.t); err != nil {
		return m, err
	}
	if err := mv.setMoveState(ctx, m, Aborted); err != nil {
		return m, err
	}
	mv.op.NotifyChanged(ctx, e.t.Slug)
	mv.op.Audit(ctx, e.t, "tenant.move_aborted", map[string]any{"move": m.ID})
	return mv.Load(ctx, id)
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
