package tenancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// staleProvisioning is how long a 'provisioning' row may sit before another
// attempt treats it as abandoned (its process died) and cleans it up.
const staleProvisioning = 10 * time.Minute

// ProvisionParams describes a new tenant.
type ProvisionParams struct {
	Slug string
	Name string
	// DatabaseID places the tenant in a registered database (AddDatabase);
	// empty picks the shared database with the fewest tenants.
	DatabaseID string
	// Init runs in the new tenant's scoped transaction before the tenant is
	// routable (e.g. to create the first owner). Its failure undoes everything.
	Init func(ctx context.Context, tx Tx) error
}

// Provision creates a tenant on the shared tier: a control row, schema
// t_<id>, NOLOGIN role r_<id> with rights on that schema only, the tenant
// migrations, then Init. Until the last step the tenant is 'provisioning' and
// the router does not serve it; any failure drops what was created, so no half
// tenant is ever visible and the slug can be retried.
func (r *Registry) Provision(ctx context.Context, p ProvisionParams) (*Tenant, error) {
	id := uuid.New()
	db, tier, err := r.placeNew(ctx, p.DatabaseID)
	if err != nil {
		return nil, fmt.Errorf("provision %q: %w", p.Slug, err)
	}
	t := &Tenant{
		ID: id, Slug: p.Slug, Name: p.Name, Tier: tier, Status: StatusProvisioning,
		DatabaseID: db, Schema: schemaName(id), Role: roleName(id),
	}
	if err := r.claimSlug(ctx, t); err != nil {
		return nil, fmt.Errorf("provision %q: %w", p.Slug, err)
	}
	if err := r.build(ctx, t, p.Init); err != nil {
		cleanupCtx := context.WithoutCancel(ctx)
		if cerr := r.dropTenant(cleanupCtx, t); cerr != nil {
			r.markFailed(cleanupCtx, t, errors.Join(err, cerr))
			return nil, fmt.Errorf("provision %q: %w (cleanup failed: %v)", p.Slug, err, cerr)
		}
		return nil, fmt.Errorf("provision %q: %w", p.Slug, err)
	}
	r.audit(ctx, t, "tenant.provisioned", map[string]any{"tier": t.Tier, "database": t.DatabaseID})
	return t, nil
}

// placeNew chooses the database of a new tenant: the one asked for, or the
// shared database holding the fewest tenants.
func (r *Registry) placeNew(ctx context.Context, databaseID string) (string, string, error) {
	if databaseID != "" {
		var kind string
		err := r.control.QueryRow(ctx, `SELECT kind FROM control.databases WHERE id = $1`, databaseID).Scan(&kind)
		if err != nil {
			return "", "", fmt.Errorf("database %q: %w", databaseID, err)
		}
		return databaseID, kind, nil
	}
	var id string
	err := r.control.QueryRow(ctx, `SELECT d.id FROM control.databases d LEFT JOIN control.tenants t ON t.database_id = d.id
		WHERE d.kind = 'shared' GROUP BY d.id ORDER BY count(t.id), d.id LIMIT 1`).Scan(&id)
	if err != nil {
		return "", "", fmt.Errorf("choose shared database: %w", err)
	}
	return id, TierShared, nil
}

// SharedDatabase returns the shared database holding the fewest tenants.
func (r *Registry) SharedDatabase(ctx context.Context) (string, error) {
	id, _, err := r.placeNew(ctx, "")
	return id, err
}

// AddDatabase registers a database that can hold tenant schemas. url is
// stored encrypted (PATCHDESK_SECRET_KEY) or, given as env:VAR, as that
// reference; the database is reached and its infra schema migrated first.
func (r *Registry) AddDatabase(ctx context.Context, id, kind, url string) error {
	if kind != TierShared && kind != TierDedicated {
		return fmt.Errorf("add database %q: kind must be shared or dedicated", id)
	}
	ref, err := r.secrets.reference(url)
	if err != nil {
		return fmt.Errorf("add database %q: %w", id, err)
	}
	dsn, err := r.secrets.resolveDSN(ref)
	if err != nil {
		return fmt.Errorf("add database %q: %w", id, err)
	}
	if err := EnsureDatabase(ctx, dsn); err != nil {
		return fmt.Errorf("add database %q: %w", id, err)
	}
	if _, err := r.control.Exec(ctx, `INSERT INTO control.databases (id, kind, dsn_ref) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET dsn_ref = EXCLUDED.dsn_ref`, id, kind, ref); err != nil {
		return fmt.Errorf("add database %q: %w", id, err)
	}
	// The DSN may have changed: new transactions get a new pool. River's
	// pool keeps its DSN until restart (closing it would stop River).
	r.pools.replace(id)
	r.migrated.Delete(id)
	if err := r.withPool(ctx, id, func(*pgxpool.Pool) error { return nil }); err != nil {
		return fmt.Errorf("add database %q: %w", id, err)
	}
	return nil
}

// claimSlug inserts the 'provisioning' row, first clearing a failed or
// abandoned earlier attempt at the same slug.
func (r *Registry) claimSlug(ctx context.Context, t *Tenant) error {
	const insert = `INSERT INTO control.tenants (id, slug, name, tier, status, database_id, schema_name, role_name)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	args := []any{t.ID, t.Slug, t.Name, t.Tier, t.Status, t.DatabaseID, t.Schema, t.Role}
	_, err := r.control.Exec(ctx, insert, args...)
	if !isUniqueViolation(err) {
		if err != nil {
			return fmt.Errorf("claim slug: %w", err)
		}
		return nil
	}
	old, err := scanTenant(r.control.QueryRow(ctx, `SELECT `+tenantColumns+` FROM control.tenants WHERE slug = $1`, t.Slug))
	if errors.Is(err, ErrTenantNotFound) {
		return ErrSlugTaken // a concurrent attempt held it and has just let go: the caller may retry
	}
	if err != nil {
		return fmt.Errorf("claim slug: %w", err)
	}
	abandoned := old.Status == StatusProvisioning && time.Since(old.CreatedAt) > staleProvisioning
	if old.Status != StatusFailed && !abandoned {
		return ErrSlugTaken
	}
	if err := r.dropTenant(ctx, old); err != nil {
		return fmt.Errorf("clean up failed attempt: %w", err)
	}
	if _, err := r.control.Exec(ctx, insert, args...); err != nil {
		if isUniqueViolation(err) {
			return ErrSlugTaken
		}
		return fmt.Errorf("claim slug: %w", err)
	}
	return nil
}

func (r *Registry) build(ctx context.Context, t *Tenant, initFn func(context.Context, Tx) error) error {
	err := r.withPool(ctx, t.DatabaseID, func(pool *pgxpool.Pool) error { return createSchemaAndRole(ctx, pool, t) })
	if err != nil {
		return err
	}
	if t.SchemaVersion, err = r.migrateSchema(ctx, t); err != nil {
		return err
	}
	if initFn != nil {
		if err := r.Tx(ctx, t, initFn); err != nil {
			return fmt.Errorf("initialise tenant: %w", err)
		}
	}
	t.Status = StatusActive
	_, err = r.control.Exec(ctx, `UPDATE control.tenants SET status = $2, schema_version = $3, updated_at = now() WHERE id = $1`,
		t.ID, t.Status, t.SchemaVersion)
	if err != nil {
		return fmt.Errorf("activate tenant: %w", err)
	}
	return nil
}

// createSchemaAndRole creates the tenant's role (unless the cluster already
// has it, as when a move targets the same server) and its schema.
func createSchemaAndRole(ctx context.Context, pool *pgxpool.Pool, t *Tenant) error {
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, t.Role).Scan(&exists); err != nil {
			return fmt.Errorf("find role: %w", err)
		}
		ddl := []string{
			`GRANT ` + role + ` TO CURRENT_USER`,
			`GRANT ` + tenantGroupRole + ` TO ` + role,
			`CREATE SCHEMA ` + schema,
			`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
			`ALTER DEFAULT PRIVILEGES IN SCHEMA ` + schema + ` GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + role,
			`ALTER DEFAULT PRIVILEGES IN SCHEMA ` + schema + ` GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ` + role,
		}
		if !exists {
			ddl = append([]string{`CREATE ROLE ` + role + ` NOLOGIN`}, ddl...)
		}
		for _, stmt := range ddl {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create schema and role: %w", err)
			}
		}
		return nil
	})
}

// dropTenant removes a tenant's schema, role and control row. Every step
// tolerates the object being absent, so it can finish an interrupted cleanup.
func (r *Registry) dropTenant(ctx context.Context, t *Tenant) error {
	pool, release, err := r.pool(ctx, t.DatabaseID)
	if err != nil {
		return err
	}
	defer release()
	schema, role := pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Role}.Sanitize()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			return fmt.Errorf("drop schema: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, t.Role).Scan(&exists); err != nil {
			return fmt.Errorf("find role: %w", err)
		}
		if !exists {
			return nil
		}
		// DROP OWNED clears the default privileges that still name the role.
		for _, stmt := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("drop role: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop tenant %s: %w", t.Slug, err)
	}
	if _, err := r.control.Exec(ctx, `DELETE FROM control.tenants WHERE id = $1`, t.ID); err != nil {
		return fmt.Errorf("drop tenant %s: %w", t.Slug, err)
	}
	r.notifyChanged(ctx, t.Slug)
	return nil
}

func (r *Registry) markFailed(ctx context.Context, t *Tenant, cause error) {
	_, err := r.control.Exec(ctx, `UPDATE control.tenants SET status = 'failed', last_error = $2, updated_at = now() WHERE id = $1`,
		t.ID, cause.Error())
	if err != nil {
		r.log.ErrorContext(ctx, "mark tenant failed", "tenant", t.Slug, "err", err)
	}
}

// audit records an operator-level action in the control plane.
func (r *Registry) audit(ctx context.Context, t *Tenant, action string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	_, err := r.control.Exec(ctx, `INSERT INTO control.tenant_audit (tenant_id, slug, action, data) VALUES ($1, $2, $3, $4)`,
		t.ID, t.Slug, action, data)
	if err != nil {
		r.log.ErrorContext(ctx, "audit tenant action", "tenant", t.Slug, "action", action, "err", err)
	}
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
