package tenancy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	tenantmigrations "github.com/patchdesk/patchdesk/migrations/tenant"
)

// Config configures a Registry.
type Config struct {
	// DatabaseURL is the control database; it also hosts the default shared tier.
	DatabaseURL string
	// MaxConns bounds the control/shared database pool (default 20).
	MaxConns int32
	// DedicatedMaxConns bounds each dedicated database's pool (default 5).
	DedicatedMaxConns int32
	// JobMaxConns bounds the pool River gets for each dedicated database's
	// job tables (default 5). That pool is never idled: River holds it.
	JobMaxConns int32
	// PoolIdle closes a dedicated database's pool that nobody holds and
	// nobody used for this long (default 10m); the next user reopens it.
	PoolIdle time.Duration
	// OpenTimeout bounds opening a database's pool: connect, ping and infra
	// migrations (default 1m).
	OpenTimeout time.Duration
	// SecretKey (32 bytes, see ParseSecretKey) encrypts the DSNs of
	// dedicated databases in the control plane. Without it only env:VAR
	// references can be registered.
	SecretKey []byte
	// ResolveEnv resolves the VAR of an env:VAR database reference (cmd
	// wires the process environment); nil refuses such references.
	ResolveEnv func(name string) (string, error)
	// CacheTTL bounds how long a placement is served from memory without a
	// change notification (default 30s).
	CacheTTL time.Duration
	// CacheSize bounds the number of cached placements (default 10,000).
	CacheSize int
	// TenantMigrations overrides the tenant migrations (tests); default migrations/tenant.
	TenantMigrations fs.FS
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
	// NoMigrate opens the registry without applying pending control-schema
	// migrations, for read-only checks (doctor) that must report a schema
	// behind rather than fix it.
	NoMigrate bool
}

// Registry is the control plane: tenants, their placements and the pools that reach them.
type Registry struct {
	cfg     Config
	log     *slog.Logger
	control *pgxpool.Pool
	latest  int64 // newest tenant migration version known to this binary
	cache   *placementCache
	secrets secrets
	// pools hold the tenant databases' pools for transactions; jobPools
	// River's, which are never idled.
	pools, jobPools *poolSet
	closing         chan struct{}
	closeOnce       sync.Once
	// migrated holds the ids of databases whose infra schema this process
	// has brought up to date.
	migrated sync.Map
}

// Open connects to the control database, applies pending control migrations
// (under an advisory lock, so replicas may start together) and returns a Registry.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	cfg.MaxConns = cmp.Or(cfg.MaxConns, 20)
	cfg.DedicatedMaxConns = cmp.Or(cfg.DedicatedMaxConns, 5)
	cfg.JobMaxConns = cmp.Or(cfg.JobMaxConns, 5)
	cfg.PoolIdle = cmp.Or(cfg.PoolIdle, 10*time.Minute)
	cfg.OpenTimeout = cmp.Or(cfg.OpenTimeout, time.Minute)
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, 30*time.Second)
	cfg.CacheSize = cmp.Or(cfg.CacheSize, 10_000)
	if cfg.TenantMigrations == nil {
		cfg.TenantMigrations = tenantmigrations.FS
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("open registry: database URL is empty")
	}
	if len(cfg.SecretKey) != 0 && len(cfg.SecretKey) != secretKeySize {
		return nil, fmt.Errorf("open registry: the secret key must be %d bytes, not %d", secretKeySize, len(cfg.SecretKey))
	}
	latest, err := latestVersion(cfg.TenantMigrations)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	pool, err := newPool(ctx, cfg.DatabaseURL, cfg.MaxConns)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	r := &Registry{
		cfg:     cfg,
		log:     cfg.Logger,
		control: pool,
		latest:  latest,
		cache:   newPlacementCache(cfg.CacheSize, cfg.CacheTTL),
		secrets: secrets{key: cfg.SecretKey, resolveEnv: cfg.ResolveEnv},
		closing: make(chan struct{}),
	}
	r.pools = &poolSet{idle: cfg.PoolIdle, open: r.openTxPool, openTimeout: cfg.OpenTimeout, closing: r.closing, entries: map[string]*poolEntry{}}
	r.jobPools = &poolSet{open: r.openJobPool, openTimeout: cfg.OpenTimeout, closing: r.closing, entries: map[string]*poolEntry{}}
	if cfg.NoMigrate {
		return r, nil
	}
	if err := r.migrateControl(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	return r, nil
}

// newPool opens a pool whose connections have an empty search_path, so any
// query that was not scoped to a tenant (or schema-qualified) fails loudly.
func newPool(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pc.MaxConns = maxConns
	pc.MaxConnIdleTime = 5 * time.Minute
	// A backend caches the catalog of every tenant schema it touched (about
	// 80 KB each, measured): recycling connections bounds that memory.
	pc.MaxConnLifetime = 15 * time.Minute
	pc.ConnConfig.RuntimeParams["search_path"] = ""
	pc.ConnConfig.RuntimeParams["application_name"] = "patchdesk"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

// closeIdlePools closes the transaction pools of dedicated databases that
// nobody holds and nobody used for PoolIdle; they reopen on the next use.
// River's pools are not among them.
func (r *Registry) closeIdlePools() {
	if n := r.pools.sweep(time.Now()); n > 0 {
		r.log.Info("closed idle database pools", "count", n)
	}
}

// Close cancels pool opens in flight and closes every pool. Users of the
// registry (River clients, relays) must have stopped.
func (r *Registry) Close() {
	r.closeOnce.Do(func() { close(r.closing) })
	r.pools.close()
	r.jobPools.close()
	r.control.Close()
}

// LatestVersion is the newest tenant migration this binary knows.
func (r *Registry) LatestVersion() int64 { return r.latest }

// Ping checks that the control database answers.
func (r *Registry) Ping(ctx context.Context) error {
	if err := r.control.Ping(ctx); err != nil {
		return fmt.Errorf("ping control database: %w", err)
	}
	return nil
}

// controlRef is the dsn_ref of the control database's own entry.
const controlRef = "control"

// pool returns the transaction pool of a tenant database, opening it on
// first use, with a lease that release ends: the pool is not idled while
// leased.
func (r *Registry) pool(ctx context.Context, databaseID string) (*pgxpool.Pool, func(), error) {
	return r.pools.acquire(ctx, databaseID)
}

// withPool runs fn with a leased pool of a tenant database.
func (r *Registry) withPool(ctx context.Context, databaseID string, fn func(p *pgxpool.Pool) error) error {
	p, release, err := r.pool(ctx, databaseID)
	if err != nil {
		return err
	}
	defer release()
	return fn(p)
}

// openTxPool opens a database's transaction pool and brings its infra
// schema (outbox, River's tables) up to date once per process.
func (r *Registry) openTxPool(ctx context.Context, databaseID string) (*pgxpool.Pool, bool, error) {
	p, shared, err := r.openPool(ctx, databaseID, r.cfg.DedicatedMaxConns)
	if err != nil || shared {
		return p, shared, err
	}
	if _, done := r.migrated.Load(databaseID); !done {
		if err := migrateInfra(ctx, p); err != nil {
			p.Close()
			return nil, false, fmt.Errorf("database %q: %w", databaseID, err)
		}
		r.migrated.Store(databaseID, true)
	}
	return p, false, nil
}

// openJobPool opens the pool River uses for a database's job tables.
func (r *Registry) openJobPool(ctx context.Context, databaseID string) (*pgxpool.Pool, bool, error) {
	return r.openPool(ctx, databaseID, r.cfg.JobMaxConns)
}

// openPool looks a database up in the control plane and connects to it;
// the control database's entry is the control pool itself (shared).
func (r *Registry) openPool(ctx context.Context, databaseID string, maxConns int32) (*pgxpool.Pool, bool, error) {
	var ref string
	err := r.control.QueryRow(ctx, `SELECT dsn_ref FROM control.databases WHERE id = $1`, databaseID).Scan(&ref)
	if err != nil {
		return nil, false, fmt.Errorf("load database %q: %w", databaseID, err)
	}
	if ref == controlRef {
		return r.control, true, nil
	}
	dsn, err := r.secrets.resolveDSN(ref)
	if err != nil {
		return nil, false, fmt.Errorf("database %q: %w", databaseID, err)
	}
	p, err := newPool(ctx, dsn, maxConns)
	if err != nil {
		return nil, false, fmt.Errorf("database %q: %w", databaseID, err)
	}
	return p, false, nil
}

const tenantColumns = `id, slug, name, tier, status, database_id, schema_name, role_name, schema_version, created_at, updated_at`

func scanTenant(row pgx.Row) (*Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Tier, &t.Status, &t.DatabaseID, &t.Schema, &t.Role,
		&t.SchemaVersion, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrTenantNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan tenant: %w", err)
	}
	return &t, nil
}

// Lookup returns a servable (active or suspended) tenant by slug, bypassing the cache.
func (r *Registry) Lookup(ctx context.Context, slug string) (*Tenant, error) {
	t, err := scanTenant(r.control.QueryRow(ctx,
		`SELECT `+tenantColumns+` FROM control.tenants WHERE slug = $1 AND status IN ('active', 'suspended')`, slug))
	if err != nil {
		return nil, fmt.Errorf("lookup tenant %q: %w", slug, err)
	}
	return t, nil
}

// Resolve returns the tenant to serve for a slug, from the placement cache when fresh.
func (r *Registry) Resolve(ctx context.Context, slug string) (*Tenant, error) {
	if t, ok := r.cache.get(cacheKey{key: slug}); ok {
		return t, nil
	}
	t, err := r.Lookup(ctx, slug)
	if err != nil {
		return nil, err
	}
	r.cache.put(cacheKey{key: slug}, t)
	return t, nil
}

// List returns every tenant known to the control plane, ordered by slug.
func (r *Registry) List(ctx context.Context) ([]*Tenant, error) {
	rows, err := r.control.Query(ctx, `SELECT `+tenantColumns+` FROM control.tenants ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []*Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// CountByTierStatus reports how many tenants are in each (tier, status).
func (r *Registry) CountByTierStatus(ctx context.Context) (map[[2]string]int, error) {
	rows, err := r.control.Query(ctx, `SELECT tier, status, count(*) FROM control.tenants GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count tenants: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]int{}
	for rows.Next() {
		var tier, status string
		var n int
		if err := rows.Scan(&tier, &status, &n); err != nil {
			return nil, fmt.Errorf("count tenants: %w", err)
		}
		out[[2]string{tier, status}] = n
	}
	return out, rows.Err()
}
