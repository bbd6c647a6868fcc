package tenancy

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// InfraConn is a dedicated connection to one tenant database, for
// infrastructure that works across the tenants of that database (the
// outbox relay): it runs as the application role and must only touch schema
// infra. It is closed, never returned to a pool, so session state such as
// LISTEN or advisory locks cannot leak.
type InfraConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	WaitForNotification(ctx context.Context) (*pgconn.Notification, error)
}

// Databases lists the ids of the databases that hold tenant schemas.
func (r *Registry) Databases(ctx context.Context) ([]string, error) {
	rows, err := r.control.Query(ctx, `SELECT id FROM control.databases ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	return ids, nil
}

// WithInfraConn runs fn on a connection of its own to the database; the
// connection is closed afterwards, releasing any session locks.
func (r *Registry) WithInfraConn(ctx context.Context, databaseID string, fn func(ctx context.Context, c InfraConn) error) error {
	pool, release, err := r.pool(ctx, databaseID)
	if err != nil {
		return err
	}
	pc, err := pool.Acquire(ctx)
	if err != nil {
		release()
		return fmt.Errorf("acquire infra connection: %w", err)
	}
	// A hijacked connection no longer belongs to the pool: the pool may be idled.
	conn := pc.Hijack()
	release()
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(ctx, conn)
}

// ByID returns a servable (active or suspended) tenant by id, from the cache when fresh.
func (r *Registry) ByID(ctx context.Context, id uuid.UUID) (*Tenant, error) {
	key := cacheKey{byID: true, key: id.String()}
	if t, ok := r.cache.get(key); ok {
		return t, nil
	}
	t, err := r.lookupID(ctx, id)
	if err != nil {
		return nil, err
	}
	r.cache.put(key, t)
	return t, nil
}

// lookupID reads a servable tenant by id from the control plane, bypassing the cache.
func (r *Registry) lookupID(ctx context.Context, id uuid.UUID) (*Tenant, error) {
	t, err := scanTenant(r.control.QueryRow(ctx,
		`SELECT `+tenantColumns+` FROM control.tenants WHERE id = $1 AND status IN ('active', 'suspended')`, id))
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", id, err)
	}
	return t, nil
}

// JobDriver returns a River driver for the database's job tables (schema
// infra). River keeps the driver for the life of the process, so it gets a
// pool of its own that is never idled: idling the transaction pools cannot
// close a pool under River. The pool closes with the registry.
func (r *Registry) JobDriver(ctx context.Context, databaseID string) (riverdriver.Driver[pgx.Tx], error) {
	// The transaction pool's first open migrates the job tables River needs.
	if err := r.withPool(ctx, databaseID, func(*pgxpool.Pool) error { return nil }); err != nil {
		return nil, err
	}
	pool, release, err := r.jobPools.acquire(ctx, databaseID)
	if err != nil {
		return nil, err
	}
	release() // the job pool set never idles: the lease only guards the open
	return riverpgxv5.New(pool), nil
}

// migrateJobs brings River's tables in schema infra up to date.
func migrateJobs(ctx context.Context, driver riverdriver.Driver[pgx.Tx]) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: "infra"})
	if err != nil {
		return fmt.Errorf("job migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job migrations: %w", err)
	}
	return nil
}
