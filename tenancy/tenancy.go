// Package tenancy owns everything that touches a PostgreSQL connection pool:
// the control-plane registry of tenants, placement lookup and caching,
// tenant-scoped transactions, the pools behind them, provisioning and
// per-schema migrations. Modules reach tenant data only through Registry.Tx.
// Its sub-packages hold the rest: router (request → tenant), move (tier
// moves) and archive (export and import), the last two through Operator.
package tenancy

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Tenant tiers.
const (
	TierShared    = "shared"
	TierDedicated = "dedicated"
)

// Tenant statuses stored in control.tenants.
const (
	StatusProvisioning = "provisioning"
	StatusActive       = "active"
	StatusSuspended    = "suspended"
	StatusFailed       = "failed"
)

// Errors returned by the registry and the router; the HTTP layer maps them to problem+json.
var (
	ErrTenantNotFound  = errors.New("tenant not found")                     // 404
	ErrTenantSuspended = errors.New("tenant suspended")                     // 403
	ErrTenantBehind    = errors.New("tenant schema is being migrated")      // 503
	ErrSlugTaken       = errors.New("slug already taken")                   // 409
	ErrTenantMoving    = errors.New("tenant is being moved; retry shortly") // 503
)

// Tenant is one row of control.tenants: who the tenant is and where its data lives.
type Tenant struct {
	ID            uuid.UUID
	Slug          string
	Name          string
	Tier          string
	Status        string
	DatabaseID    string
	Schema        string
	Role          string
	SchemaVersion int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

type tenantKey struct{}

// WithTenant returns a context carrying the resolved tenant.
func WithTenant(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, tenantKey{}, t)
}

// FromContext returns the tenant the router resolved for this request, or nil.
func FromContext(ctx context.Context) *Tenant {
	t, _ := ctx.Value(tenantKey{}).(*Tenant)
	return t
}

// schemaName and roleName derive the per-tenant identifiers from the tenant id,
// so they never contain user input.
func schemaName(id uuid.UUID) string { return "t_" + hexID(id) }
func roleName(id uuid.UUID) string   { return "r_" + hexID(id) }

func hexID(id uuid.UUID) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 32)
	for i, v := range id {
		b[2*i], b[2*i+1] = digits[v>>4], digits[v&0x0f]
	}
	return string(b)
}

// lockID maps a tenant to the advisory-lock key that serialises its migrations.
func lockID(id uuid.UUID) int64 {
	var v int64
	for _, b := range id[:8] {
		v = v<<8 | int64(b)
	}
	return v
}
