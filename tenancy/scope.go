package tenancy

import (
	"context"
	"errors"
	"fmt"

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
type TxRunner interface {
	Tx(ctx context.Context, t *Tenant, fn func(ctx context.Context, tx Tx) error) error
}

type scopedTx struct {
	tx pgx.Tx
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
// the transaction back. A statement that fails with SQLSTATE 0A000 (a cached
// plan invalidated by a concurrent migration) is retried once.
func (r *Registry) Tx(ctx context.Context, t *Tenant, fn func(ctx context.Context, tx Tx) error) error {
	if t == nil {
		return errors.New("tenant transaction: no tenant")
	}
	pool, err := r.pool(ctx, t.DatabaseID)
	if err != nil {
		return fmt.Errorf("tenant transaction: %w", err)
	}
	err = scopedRun(ctx, pool, t, fn)
	if isCachedPlanError(err) {
		err = scopedRun(ctx, pool, t, fn)
	}
	return err
}

func scopedRun(ctx context.Context, pool *pgxpool.Pool, t *Tenant, fn func(ctx context.Context, tx Tx) error) (err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin tenant transaction: %w", err)
	}
	defer func() {
		if err != nil {
			// Roll back even when the request context is gone.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err = tx.Exec(ctx, `SELECT set_config('search_path', $1, true), set_config('role', $2, true)`,
		pgx.Identifier{t.Schema}.Sanitize(), t.Role); err != nil {
		return fmt.Errorf("scope transaction to tenant: %w", err)
	}
	if err = fn(ctx, scopedTx{tx: tx, t: t}); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit tenant transaction: %w", err)
	}
	return nil
}

func isCachedPlanError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "0A000"
}
