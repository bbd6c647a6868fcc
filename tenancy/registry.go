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
	// PoolIdle closes a dedicated database's pool unused for this long (default 10m).
	PoolIdle time.Duration
	// CacheTTL bounds how long a placement is served from memory without a
	// change notification (default 30s).
	CacheTTL time.Duration
	// CacheSize bounds the number of cached placements (default 10,000).
	CacheSize int
	// TenantMigrations overrides the tenant migrations (tests); default migrations/tenant.
	TenantMigrations fs.FS
	// Logger receives operational logs (default slog.Default()).
	Logger *slog.Logger
}

// Registry is the control plane: tenants, their placements and the pools that reach them.
type Registry struct {
	cfg     Config
	log     *slog.Logger
	control *pgxpool.Pool
	latest  int64 // newest tenant migration version known to this binary
	cache   *placementCache

	mu       sync.Mutex
	pools    map[string]*pgxpool.Pool
	lastUsed map[string]time.Time
}

// Open connects to the control database, applies pending control migrations
// (under an advisory lock, so replicas may start together) and returns a Registry.
func Open(ctx context.Context, cfg Config) (*Registry, error) {
	cfg.MaxConns = cmp.Or(cfg.MaxConns, 20)
	cfg.DedicatedMaxConns = cmp.Or(cfg.DedicatedMaxConns, 5)
	cfg.PoolIdle = cmp.Or(cfg.PoolIdle, 10*time.Minute)
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
	latest, err := latestVersion(cfg.TenantMigrations)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	pool, err := newPool(ctx, cfg.DatabaseURL, cfg.MaxConns)
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	r := &Registry{
		cfg:      cfg,
		log:      cfg.Logger,
		control:  pool,
		latest:   latest,
		cache:    newPlacementCache(cfg.CacheSize, cfg.CacheTTL),
		pools:    map[string]*pgxpool.Pool{},
		lastUsed: map[string]time.Time{},
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

// closeIdlePools closes pools of dedicated databases unused for PoolIdle;
// they reopen on the next request.
func (r *Registry) closeIdlePools() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.pools {
		if p != r.control && time.Since(r.lastUsed[id]) > r.cfg.PoolIdle {
			p.Close()
			delete(r.pools, id)
		}
	}
}

// Close closes every pool.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.pools {
		p.Close()
		delete(r.pools, id)
	}
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

// pool returns the pool of a tenant database, opening it on first use.
func (r *Registry) pool(ctx context.Context, databaseID string) (*pgxpool.Pool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastUsed[databaseID] = time.Now()
	if p, ok := r.pools[databaseID]; ok {
		return p, nil
	}
	var ref string
	err := r.control.QueryRow(ctx, `SELECT dsn_ref FROM control.databases WHERE id = $1`, databaseID).Scan(&ref)
	if err != nil {
		return nil, fmt.Errorf("load database %q: %w", databaseID, err)
	}
	if ref == "control" {
		r.pools[databaseID] = r.control
		return r.control, nil
	}
	dsn, err := resolveDSN(ref)
	if err != nil {
		return nil, fmt.Errorf("database %q: %w", databaseID, err)
	}
	p, err := newPool(ctx, dsn, r.cfg.DedicatedMaxConns)
	if err != nil {
		return nil, fmt.Errorf("database %q: %w", databaseID, err)
	}
	if err := migrateInfra(ctx, p); err != nil {
		p.Close()
		return nil, fmt.Errorf("database %q: %w", databaseID, err)
	}
	r.pools[databaseID] = p
	return p, nil
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
	if t, ok := r.cache.get(slug); ok {
		return t, nil
	}
	t, err := r.Lookup(ctx, slug)
	if err != nil {
		return nil, err
	}
	r.cache.put(slug, t)
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
