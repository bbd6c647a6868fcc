package tenancy

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Delete erases a tenant: its schema in every database (retired copies of
// past moves included), its role, its unpublished outbox rows and its control
// row. The control plane's audit trail of the tenant is kept.
func (r *Registry) Delete(ctx context.Context, slug string) error {
	t, err := scanTenant(r.control.QueryRow(ctx, `SELECT `+tenantColumns+` FROM control.tenants WHERE slug = $1`, slug))
	if err != nil {
		return fmt.Errorf("delete %q: %w", slug, err)
	}
	var moving bool
	if err := r.control.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM control.tenant_moves WHERE tenant_id = $1
		AND state NOT IN ('done', 'aborted'))`, t.ID).Scan(&moving); err != nil {
		return fmt.Errorf("delete %q: %w", slug, err)
	}
	if moving {
		return fmt.Errorf("delete %q: a move is unfinished; resume or abort it first", slug)
	}
	dbs, err := r.Databases(ctx)
	if err != nil {
		return err
	}
	// Objects first in every database, so the role has nothing left anywhere.
	for _, db := range dbs {
		err := r.withPool(ctx, db, func(pool *pgxpool.Pool) error { return eraseObjects(ctx, pool, t) })
		if err != nil {
			return fmt.Errorf("delete %q in %s: %w", slug, db, err)
		}
	}
	for _, db := range dbs {
		err := r.withPool(ctx, db, func(pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{t.Role}.Sanitize())
			return err
		})
		if err != nil {
			return fmt.Errorf("delete %q: drop role in %s: %w", slug, db, err)
		}
	}
	err = pgx.BeginFunc(ctx, r.control, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM control.retired_copies WHERE tenant_id = $1`,
			`DELETE FROM control.tenants WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, t.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %q: %w", slug, err)
	}
	r.notifyChanged(ctx, slug)
	r.audit(ctx, t, "tenant.deleted", map[string]any{"database": t.DatabaseID})
	return nil
}

// eraseObjects drops a tenant's schemas (retired copies included), its
// unpublished outbox rows and whatever its role owns in one database.
func eraseObjects(ctx context.Context, pool *pgxpool.Pool, t *Tenant) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\_r%'`, t.Schema)
		if err != nil {
			return err
		}
		schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, s := range schemas {
			if _, err := tx.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{s}.Sanitize()+` CASCADE`); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM infra.outbox WHERE tenant_id = $1`, t.ID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, t.Role).Scan(&exists); err != nil || !exists {
			return err
		}
		_, err = tx.Exec(ctx, `DROP OWNED BY `+pgx.Identifier{t.Role}.Sanitize())
		return err
	})
}

// Size returns the bytes a tenant's schema takes in its database.
func (r *Registry) Size(ctx context.Context, t *Tenant) (int64, error) {
	var n int64
	err := r.withPool(ctx, t.DatabaseID, func(pool *pgxpool.Pool) error {
		return pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`, t.Schema).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", t.Slug, err)
	}
	return n, nil
}

// DropRetired drops the retired copies tier moves left whose retention has
// passed.
func (r *Registry) DropRetired(ctx context.Context) (int, error) {
	rows, err := r.control.Query(ctx, `SELECT id, database_id, schema_name FROM control.retired_copies
		WHERE dropped_at IS NULL AND drop_after <= now()`)
	if err != nil {
		return 0, fmt.Errorf("list retired copies: %w", err)
	}
	type copyRow struct {
		id         int64
		db, schema string
	}
	copies, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (copyRow, error) {
		var c copyRow
		return c, row.Scan(&c.id, &c.db, &c.schema)
	})
	if err != nil {
		return 0, fmt.Errorf("list retired copies: %w", err)
	}
	for _, c := range copies {
		err := r.withPool(ctx, c.db, func(pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{c.schema}.Sanitize()+` CASCADE`)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("drop retired copy %s: %w", c.schema, err)
		}
		if _, err := r.control.Exec(ctx, `UPDATE control.retired_copies SET dropped_at = now() WHERE id = $1`, c.id); err != nil {
			return 0, err
		}
	}
	return len(copies), nil
}
