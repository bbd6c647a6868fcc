package tenancy

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Internals the external tests of this package look at.

// HasTxPool reports whether the registry holds an open transaction pool of a database.
func (r *Registry) HasTxPool(databaseID string) bool { return r.pools.has(databaseID) }

// SweepIdleAt runs the idle sweep as if it were now and returns how many pools it closed.
func (r *Registry) SweepIdleAt(now time.Time) int { return r.pools.sweep(now) }

// LeasePool leases a database's transaction pool and pings it.
func (r *Registry) LeasePool(ctx context.Context, databaseID string) (ping func() error, release func(), err error) {
	p, release, err := r.pool(ctx, databaseID)
	if err != nil {
		return nil, nil, err
	}
	return func() error { return p.Ping(ctx) }, release, nil
}

// ControlExec runs a statement on the control database.
func (r *Registry) ControlExec(ctx context.Context, sql string, args ...any) error {
	_, err := r.control.Exec(ctx, sql, args...)
	return err
}

// CachedByID reports whether the placement cache holds a tenant under its id.
func (r *Registry) CachedByID(id uuid.UUID) bool {
	_, ok := r.cache.get(cacheKey{byID: true, key: id.String()})
	return ok
}

// SchemaAndRole derive a tenant's identifiers from its id.
func SchemaAndRole(id uuid.UUID) (string, string) { return schemaName(id), roleName(id) }
