package tenancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tx is a transaction scoped to one tenant: its search_path is the tenant's
// schema and it runs as the tenant's role, so PostgreSQL refuses any access to
// another tenant's schema. It exists only inside Registry.Tx.
type Tx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// Tenant is the tenant this transaction is scoped to.
	Tenant() *Tenant
}

// TxRunner runs functions in tenant-scoped transactions; modules depend on it
// rather than on the Registry.
//
// The callback may run more than once: when the tenant's copy was sealed by a
// tier move, or a cached plan went stale under a concurrent migration, the
// failed transaction is rolled back and the callback runs again in a new one.
// It must therefore only act through tx, and keep side effects that outlive
// the transaction (metrics, channel sends, calls to other systems) until Tx
// has returned nil.
type TxRunner interface {
	Tx(ctx context.Context, t *Tenant, fn func(ctx context.Context, tx Tx) error) error
}

// querier is what a scoped transaction runs its statements on: the
// connection that holds the transaction open.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type scopedTx struct {
	tx querier
	t  *Tenant
}

func (s scopedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return s.tx.Exec(ctx, sql, args...)
}

func (s scopedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.tx.Query(ctx, sql, args...)
}

func (s scopedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.tx.QueryRow(ctx, sql, args...)
}

func (s scopedTx) Tenant() *Tenant { return s.t }

// Tx runs fn in a transaction on the tenant's database whose first statement
// pins search_path and role for this transaction only (set_config(..., true)),
// so nothing leaks to the next user of the pooled connection. fn's error rolls
// the transaction back. fn may run twice (see TxRunner): once more after a
// statement fails with SQLSTATE 0A000 (a cached plan invalidated by a
// concurrent migration), or after the tenant's copy here was sealed by a tier
// move, then on the new placement.
func (r *Registry) Tx(ctx context.Context, t *Tenant, fn func(ctx context.Context, tx Tx) error) error {
	if t == nil {
		return errors.New("tenant transaction: no tenant")
	}
	err := r.scopedRun(ctx, t, fn)
	switch {
	case isCachedPlanError(err):
		err = r.scopedRun(ctx, t, fn)
	case isSealedError(err):
		// The tenant's copy here was sealed by a tier move: follow it.
		moved, merr := r.followMove(ctx, t)
		if merr != nil {
			return errors.Join(err, merr)
		}
		err = r.scopedRun(ctx, moved, fn)
	}
	return err
}

// scopedRun runs one attempt of fn on a leased pool of the tenant's database.
func (r *Registry) scopedRun(ctx context.Context, t *Tenant, fn func(ctx context.Context, tx Tx) error) error {
	pool, release, err := r.pool(ctx, t.DatabaseID)
	if err != nil {
		return fmt.Errorf("tenant transaction: %w", err)
	}
	defer release()
	return runScoped(ctx, pool, t, fn)
}

// freezeKey is the tenant's freeze lock, in the two-int4 advisory key space
// (apart from the bigint keys of migrations and the relay).
func freezeKey(t *Tenant) (int32, int32) {
	id := lockID(t.ID)
	return int32(id >> 32), int32(id)
}

// isSealedError reports a failure that a sealed or retired copy causes: the
// tenant's role lost its rights (42501), so the schema left its search_path
// and its tables are not found (42P01), or the schema was renamed (3F000).
// followMove then tells a move from a real error.
func isSealedError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "42P01" || pgErr.Code == "3F000")
}

// followMove waits (bounded) for the tenant's placement to change from t's,
// as it does right after a move seals the old copy, and returns the new one.
func (r *Registry) followMove(ctx context.Context, t *Tenant) (*Tenant, error) {
	deadline := time.Now().Add(moveWait)
	for {
		fresh, err := r.lookupID(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		if fresh.DatabaseID != t.DatabaseID || fresh.Schema != t.Schema {
			r.cache.forget(t.Slug)
			return fresh, nil
		}
		var moving bool
		if err := r.control.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM control.tenant_moves
			WHERE tenant_id = $1 AND state NOT IN ('done', 'aborted'))`, t.ID).Scan(&moving); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.Slug, err)
		}
		if !moving {
			return nil, fmt.Errorf("tenant %s: no move in progress", t.Slug)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("tenant %s: %w", t.Slug, ErrTenantMoving)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// moveWait bounds how long a request waits for a move's switch to complete.
const moveWait = 2 * time.Second

// scopeSQL pins the transaction to the tenant and takes the shared freeze
// lock that lets a tier move wait out in-flight transactions and hold new
// ones for its sub-second switch (see freezeAndSwitch).
const scopeSQL = `SELECT set_config('search_path', $1, true), set_config('role', $2, true), pg_advisory_xact_lock_shared($3, $4)`

// runScoped opens the transaction and scopes it in one round trip (BEGIN
// and scopeSQL pipelined: a round trip to PostgreSQL is the unit of cost on
// the write path), runs fn, and commits.
func runScoped(ctx context.Context, pool *pgxpool.Pool, t *Tenant, fn func(ctx context.Context, tx Tx) error) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin tenant transaction: %w", err)
	}
	// The pool closes a connection released inside a transaction (one whose
	// rollback failed) instead of handing it out again.
	defer conn.Release()
	open := false
	defer func() {
		if err != nil && open {
			// Roll back even when the request context is gone.
			_, _ = conn.Exec(context.WithoutCancel(ctx), "rollback")
		}
	}()
	hi, lo := freezeKey(t)
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(scopeSQL, pgx.Identifier{t.Schema}.Sanitize(), t.Role, hi, lo)
	br := conn.SendBatch(ctx, b)
	_, beginErr := br.Exec()
	open = beginErr == nil
	_, scopeErr := br.Exec()
	closeErr := br.Close()
	switch {
	case beginErr != nil:
		return fmt.Errorf("begin tenant transaction: %w", beginErr)
	case scopeErr != nil:
		return fmt.Errorf("scope transaction to tenant: %w", scopeErr)
	case closeErr != nil:
		return fmt.Errorf("scope transaction to tenant: %w", closeErr)
	}
	if err = fn(ctx, scopedTx{tx: conn, t: t}); err != nil {
		return err
	}
	if hook := commitHookFrom(ctx); hook != nil {
		if err = hook(ctx, scopedTx{tx: conn, t: t}); err != nil {
			return err
		}
	}
	tag, err := conn.Exec(ctx, "commit")
	if err != nil {
		return fmt.Errorf("commit tenant transaction: %w", err)
	}
	open = false
	if tag.String() != "COMMIT" {
		// A statement failed inside fn and fn went on: PostgreSQL rolled back.
		return fmt.Errorf("commit tenant transaction: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

func isCachedPlanError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000"
}
