package move

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Progress is what an operator watching a move sees: reported by
// Options.Progress as the move goes.
type Progress struct {
	Move  int64  `json:"move"`
	Slug  string `json:"slug"`
	Phase string `json:"phase"`
	// RowsCopied and RowsTotal are the initial copy's progress (the total is
	// the source's row estimate); zero outside the copy.
	RowsCopied int64 `json:"rows_copied"`
	RowsTotal  int64 `json:"rows_total"`
	// LagBytes is how much WAL of the source the target has yet to confirm;
	// nil when the move has no replication slot (yet).
	LagBytes *int64 `json:"lag_bytes"`
	// ETA estimates the rest of the initial copy from its pace so far; zero
	// when unknown.
	ETA time.Duration `json:"eta_ns"`
}

// progress reports a phase to Options.Progress, with the replication lag.
func (e *moveEnv) progress(ctx context.Context, phase string, copied *copyProgress) {
	if e.opts.Progress == nil {
		return
	}
	p := Progress{Move: e.m.ID, Slug: e.m.Slug, Phase: phase}
	if copied != nil {
		p.RowsCopied, p.RowsTotal, p.ETA = copied.copied, copied.total, copied.eta
	}
	var lag int64
	err := e.src.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL`, e.m.name()).Scan(&lag)
	if err == nil {
		p.LagBytes = &lag
	}
	e.opts.Progress(p)
}

// copyProgress is the initial copy's progress.
type copyProgress struct {
	copied, total int64
	eta           time.Duration
}

// readCopyProgress estimates the initial copy's progress: tables whose copy
// finished count with the source's row estimate, tables being copied with
// the rows their COPY has processed (pg_stat_progress_copy on the target).
func (e *moveEnv) readCopyProgress(ctx context.Context, started time.Time) (*copyProgress, error) {
	rows, err := e.src.Query(ctx, `SELECT c.relname, greatest(coalesce(s.n_live_tup, 0), c.reltuples::bigint, 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE n.nspname = $1 AND c.relkind = 'r'`, e.t.Schema)
	if err != nil {
		return nil, fmt.Errorf("source row estimates: %w", err)
	}
	estimate := map[string]int64{}
	for rows.Next() {
		var tb string
		var n int64
		if err := rows.Scan(&tb, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("source row estimates: %w", err)
		}
		estimate[tb] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source row estimates: %w", err)
	}
	rows, err = e.tgt.Query(ctx, `SELECT c.relname, sr.srsubstate::text, coalesce(p.tuples_processed, 0)
		FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid JOIN pg_class c ON c.oid = sr.srrelid
		LEFT JOIN pg_stat_progress_copy p ON p.relid = sr.srrelid AND p.datid = s.subdbid
		WHERE s.subname = $1`, e.m.name())
	if err != nil {
		return nil, fmt.Errorf("copy progress: %w", err)
	}
	var p copyProgress
	for _, n := range estimate {
		p.total += n
	}
	for rows.Next() {
		var tb, state string
		var processed int64
		if err := rows.Scan(&tb, &state, &processed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("copy progress: %w", err)
		}
		switch state {
		case "f", "s", "r": // copied; catching up or streaming
			p.copied += estimate[tb]
		case "d":
			p.copied += min(processed, estimate[tb])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("copy progress: %w", err)
	}
	if p.copied > 0 && p.copied < p.total {
		elapsed := time.Since(started)
		p.eta = time.Duration(float64(elapsed) * float64(p.total-p.copied) / float64(p.copied)).Round(time.Second)
	}
	return &p, nil
}

// recordPhases merges step or freeze timings into the move's row.
func (mv *Mover) recordPhases(ctx context.Context, m *Move, phases map[string]time.Duration) {
	ms := make(map[string]int64, len(phases))
	for name, d := range phases {
		ms[name] = d.Milliseconds()
	}
	if _, err := mv.op.Control().Exec(context.WithoutCancel(ctx), `UPDATE control.tenant_moves SET phases = phases || $2 WHERE id = $1`,
		m.ID, ms); err != nil {
		mv.op.Log().WarnContext(ctx, "record move phases", "move", m.ID, "err", err)
		return
	}
	if m.Phases == nil {
		m.Phases = map[string]int64{}
	}
	for name, v := range ms {
		m.Phases[name] = v
	}
}

// List returns the most recent moves, newest first, those still in
// progress included; limit <= 0 means 50.
func (mv *Mover) List(ctx context.Context, limit int) ([]*Move, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := mv.op.Control().Query(ctx, `SELECT `+moveColumns+` FROM control.tenant_moves m
		JOIN control.tenants t ON t.id = m.tenant_id ORDER BY m.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	moves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Move, error) { return scanMove(r) })
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	return moves, nil
}

// moveColumns are the columns scanMove reads, from tenant_moves m joined
// with tenants t.
const moveColumns = `m.id, m.tenant_id, t.slug, m.from_database, m.to_database, m.state, m.freeze_ms, m.error,
	m.phases, m.created_at, m.updated_at`

func scanMove(row pgx.Row) (*Move, error) {
	var m Move
	err := row.Scan(&m.ID, &m.TenantID, &m.Slug, &m.From, &m.To, &m.State, &m.FreezeMS, &m.Error, &m.Phases, &m.CreatedAt, &m.UpdatedAt)
	return &m, err
}
