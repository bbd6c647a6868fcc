package tenancy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MoveMarkerTable is the table a tier move adds to a tenant's schema while
// it runs (see tenancy/move); it is never part of the tenant's data.
const MoveMarkerTable = "_patchdesk_move_marker"

// Operator is operator-level access to the databases, around the scoped
// transaction: the control plane, whole pools, schema building. It exists
// for tenancy's own sub-packages (tier moves, archives) and cmd wiring;
// boundary_test.go fails when any other package calls Registry.Operator.
type Operator struct{ r *Registry }

// Operator returns operator-level access to the registry's databases.
func (r *Registry) Operator() Operator { return Operator{r: r} }

// Control is the control database's pool.
func (o Operator) Control() *pgxpool.Pool { return o.r.control }

// Log is the registry's logger.
func (o Operator) Log() *slog.Logger { return o.r.log }

// Pool leases a tenant database's pool: it is not idled until release is
// called.
func (o Operator) Pool(ctx context.Context, databaseID string) (*pgxpool.Pool, func(), error) {
	return o.r.pool(ctx, databaseID)
}

// TenantByID reads a servable tenant by id from the control plane,
// bypassing the cache.
func (o Operator) TenantByID(ctx context.Context, id uuid.UUID) (*Tenant, error) {
	return o.r.lookupID(ctx, id)
}

// Audit records an operator-level action on a tenant in the control plane.
func (o Operator) Audit(ctx context.Context, t *Tenant, action string, data map[string]any) {
	o.r.audit(ctx, t, action, data)
}

// NotifyChanged tells every process to drop its cached placement of slug.
func (o Operator) NotifyChanged(ctx context.Context, slug string) { o.r.notifyChanged(ctx, slug) }

// NotifyChangedTx announces a placement change when the control
// transaction tx commits.
func (o Operator) NotifyChangedTx(ctx context.Context, tx pgx.Tx, slug string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, placementChannel, slug); err != nil {
		return fmt.Errorf("notify placement change: %w", err)
	}
	return nil
}

// BuildSchema creates a tenant's role and schema in the database of pool
// and applies the tenant migrations this binary knows.
func (o Operator) BuildSchema(ctx context.Context, pool *pgxpool.Pool, t *Tenant) error {
	if err := createSchemaAndRole(ctx, pool, t); err != nil {
		return err
	}
	if _, err := runGoose(ctx, poolDSN(pool), t.Schema, o.r.cfg.TenantMigrations, lockID(t.ID)); err != nil {
		return fmt.Errorf("migrate schema %s: %w", t.Schema, err)
	}
	return nil
}

// FreezeKey is the tenant's freeze lock in the two-int4 advisory key space:
// every scoped transaction holds it shared; a tier move takes it exclusively
// to hold writes for its switch.
func (o Operator) FreezeKey(t *Tenant) (int32, int32) { return freezeKey(t) }

// ResolveURL turns a database URL as an operator gives it (a URL, or
// env:VAR) into a DSN, without registering anything: a dry run of a move
// to a database not yet registered connects with it.
func (o Operator) ResolveURL(url string) (string, error) {
	if strings.HasPrefix(url, "env:") {
		return o.r.secrets.resolveDSN(url)
	}
	return url, nil
}
