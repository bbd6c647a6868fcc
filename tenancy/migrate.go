package tenancy

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	sharedmigrations "github.com/patchdesk/patchdesk/migrations/shared"
)

// controlLockID and infraLockID serialise control- and infra-schema
// migrations across replicas.
const (
	controlLockID int64 = 0x7064_636f_6e74_726c // "pdcontrl"
	infraLockID   int64 = 0x7064_696e_6672_6100 // "pdinfra"
)

// tenantGroupRole is granted to every tenant role; it may insert outbox rows.
const tenantGroupRole = "patchdesk_tenant"

// latestVersion is the highest goose version among the .sql files of fsys.
func latestVersion(fsys fs.FS) (int64, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return 0, fmt.Errorf("list migrations: %w", err)
	}
	var latest int64
	for _, name := range names {
		prefix, _, ok := strings.Cut(path.Base(name), "_")
		if !ok {
			return 0, fmt.Errorf("migration %q: name must be VERSION_description.sql", name)
		}
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migration %q: %w", name, err)
		}
		latest = max(latest, v)
	}
	if latest == 0 {
		return 0, errors.New("no tenant migrations found")
	}
	return latest, nil
}

// migrateControl brings schema control up to date under an advisory lock.
func (r *Registry) migrateControl(ctx context.Context) error {
	// Two replicas racing on CREATE SCHEMA IF NOT EXISTS can collide on the catalog (23505).
	if _, err := r.control.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS control`); err != nil && !isUniqueViolation(err) {
		return fmt.Errorf("create control schema: %w", err)
	}
	_, err := runGoose(ctx, r.cfg.DatabaseURL, "control", sharedmigrations.FS, controlLockID)
	if err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	return migrateInfra(ctx, r.control)
}

// migrateInfra brings schema infra (the outbox) of one tenant database up to date.
func migrateInfra(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS infra`); err != nil && !isUniqueViolation(err) {
		return fmt.Errorf("create infra schema: %w", err)
	}
	fsys, err := fs.Sub(sharedmigrations.InfraFS, "infra")
	if err != nil {
		return fmt.Errorf("infra migrations: %w", err)
	}
	if _, err := runGoose(ctx, poolDSN(pool), "infra", fsys, infraLockID); err != nil {
		return fmt.Errorf("migrate infra schema: %w", err)
	}
	return migrateJobs(ctx, riverpgxv5.New(pool))
}

// runGoose applies pending migrations of fsys to one schema, holding the
// advisory lock lockID, on a dedicated connection whose search_path is pinned
// to that schema. It returns the schema's version afterwards.
func runGoose(ctx context.Context, dsn, schema string, fsys fs.FS, lockID int64) (int64, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, fmt.Errorf("parse database url: %w", err)
	}
	cc.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	cc.RuntimeParams["application_name"] = "patchdesk-migrate"
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	db.SetMaxOpenConns(1)

	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return 0, fmt.Errorf("session locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return 0, fmt.Errorf("goose provider: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return v, nil
}

// MigrateOptions configures a fleet migration.
type MigrateOptions struct {
	// Parallel bounds how many tenant schemas migrate at once (default 4).
	Parallel int
	// Slugs restricts the run to these tenants; empty means every tenant.
	Slugs []string
}

// MigrateResult is the outcome for one tenant schema.
type MigrateResult struct {
	Slug     string        `json:"slug"`
	Schema   string        `json:"schema"`
	From     int64         `json:"from"`
	To       int64         `json:"to"`
	Duration time.Duration `json:"duration_ns"`
	Err      error         `json:"-"`
	Error    string        `json:"error,omitempty"`
}

// OK reports whether this tenant migrated (or was already current).
func (m MigrateResult) OK() bool { return m.Err == nil }

// MigrateTenants brings every tenant schema up to date with bounded
// parallelism and reports each outcome to report (called from one goroutine
// at a time). Up-to-date schemas are detected with one cheap query each, so a
// no-op run over thousands of tenants takes seconds. A failing tenant does not
// stop the others; re-running resumes where each schema stopped. The returned
// error counts the failures.
func (r *Registry) MigrateTenants(ctx context.Context, opts MigrateOptions, report func(MigrateResult)) error {
	tenants, err := r.migratable(ctx, opts.Slugs)
	if err != nil {
		return err
	}
	jobs := make(chan *Tenant)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failed  int
		workers = min(cmp.Or(opts.Parallel, 4), max(len(tenants), 1))
	)
	for range workers {
		wg.Go(func() {
			for t := range jobs {
				res := r.migrateTenant(ctx, t)
				mu.Lock()
				if res.Err != nil {
					failed++
				}
				if report != nil {
					report(res)
				}
				mu.Unlock()
			}
		})
	}
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		jobs <- t
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate tenants: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("migrate tenants: %d of %d failed", failed, len(tenants))
	}
	return nil
}

func (r *Registry) migratable(ctx context.Context, slugs []string) ([]*Tenant, error) {
	all, err := r.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate tenants: %w", err)
	}
	want := map[string]bool{}
	for _, s := range slugs {
		want[s] = true
	}
	var out []*Tenant
	for _, t := range all {
		servable := t.Status == StatusActive || t.Status == StatusSuspended
		if servable && (len(want) == 0 || want[t.Slug]) {
			out = append(out, t)
			delete(want, t.Slug)
		}
	}
	for s := range want {
		return nil, fmt.Errorf("migrate tenants: %q: %w", s, ErrTenantNotFound)
	}
	return out, nil
}

// migrateTenant migrates one schema, skipping goose entirely when the
// schema's own version table already shows the latest version.
func (r *Registry) migrateTenant(ctx context.Context, t *Tenant) MigrateResult {
	start := time.Now()
	res := MigrateResult{Slug: t.Slug, Schema: t.Schema, From: t.SchemaVersion}
	res.To, res.Err = r.migrateSchema(ctx, t)
	if res.Err == nil && res.To != t.SchemaVersion {
		_, res.Err = r.control.Exec(ctx, `UPDATE control.tenants SET schema_version = $2, updated_at = now() WHERE id = $1`, t.ID, res.To)
		r.notifyChanged(ctx, t.Slug)
	}
	if res.Err != nil {
		res.Error = res.Err.Error()
	}
	res.Duration = time.Since(start)
	return res
}

func (r *Registry) migrateSchema(ctx context.Context, t *Tenant) (int64, error) {
	pool, release, err := r.pool(ctx, t.DatabaseID)
	if err != nil {
		return 0, err
	}
	defer release()
	var current sql.NullInt64
	err = pool.QueryRow(ctx, `SELECT max(version_id) FROM `+pgx.Identifier{t.Schema, "goose_db_version"}.Sanitize()).Scan(&current)
	if err == nil && current.Int64 == r.latest {
		return current.Int64, nil
	}
	v, err := runGoose(ctx, poolDSN(pool), t.Schema, r.cfg.TenantMigrations, lockID(t.ID))
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", t.Schema, err)
	}
	// The version table must stay out of the tenant role's reach.
	if _, err := pool.Exec(ctx, `REVOKE ALL ON `+pgx.Identifier{t.Schema, "goose_db_version"}.Sanitize()+` FROM `+
		pgx.Identifier{t.Role}.Sanitize()); err != nil {
		return 0, fmt.Errorf("protect version table of %s: %w", t.Schema, err)
	}
	return v, nil
}

// poolDSN recovers the connection string a pool was opened with.
func poolDSN(p *pgxpool.Pool) string { return p.Config().ConnString() }

// notifyChanged tells every process to drop its cached placement of slug.
func (r *Registry) notifyChanged(ctx context.Context, slug string) {
	r.cache.forget(slug)
	if _, err := r.control.Exec(ctx, `SELECT pg_notify($1, $2)`, placementChannel, slug); err != nil {
		r.log.WarnContext(ctx, "notify placement change", "tenant", slug, "err", err)
	}
}
