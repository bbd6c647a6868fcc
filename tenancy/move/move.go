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
	"strconv"
	"strings"
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

// Fault points inside the switch step (Options.Fault).
const (
	FaultBaselined = "baselined" // change logs installed, baselines taken, before the freeze
	FaultFrozen    = "frozen"    // inside the freeze, after verifying, before sealing
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
	// Fault, for tests, runs before each step (named by the state it starts
	// from) and at FaultBaselined and FaultFrozen, and may fail the move
	// there, as a crash would.
	Fault func(step string) error
	// Progress, when set, is called as the move advances: at each phase,
	// and about once a second during the initial copy.
	Progress func(Progress)
	Log      *slog.Logger
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
	// Phases is how long each step took, and the parts of the freeze
	// ("freeze.verify", ...), in milliseconds.
	Phases    map[string]int64 `json:"phases_ms"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
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
	m, err := scanMove(mv.op.Control().QueryRow(ctx, `SELECT `+moveColumns+`
		FROM control.tenant_moves m JOIN control.tenants t ON t.id = m.tenant_id WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("move %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load move %d: %w", id, err)
	}
	return m, nil
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
	// changeLogPause is how long writes waited while the source's change
	// log was installed (verify.go).
	changeLogPause time.Duration
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
	env.progress(ctx, name, nil)
	start := time.Now()
	err := run(ctx, env)
	mv.recordPhases(ctx, env.m, map[string]time.Duration{name: time.Since(start)})
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
	if err := pgx.BeginFunc(ctx, e.tgt, func(tx pgx.Tx) error { return dropChangeLog(ctx, tx, m) }); err != nil {
		return m, err
	}
	if err := e.dropSourceChangeLog(ctx); err != nil {
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
