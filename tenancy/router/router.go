// Package router resolves the tenant of each HTTP request (path prefix
// /t/{tenant}/ or Host subdomain) and refuses requests the tenant cannot
// serve, before any handler runs.
package router

import (
	"context"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/tenancy"
)

// Resolver finds the tenant to serve; *tenancy.Registry implements it.
type Resolver interface {
	Resolve(ctx context.Context, slug string) (*tenancy.Tenant, error)
	// LatestVersion is the newest tenant migration the binary knows: a
	// tenant behind it is not served.
	LatestVersion() int64
}

// ErrorWriter writes an error response; the HTTP layer supplies it so that
// tenancy stays free of response formatting.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// SlugFromHost extracts the tenant slug from a Host header under baseDomain
// ("acme.example.com" with base "example.com" → "acme"); "" when it does not match.
func SlugFromHost(host, baseDomain string) string {
	if baseDomain == "" {
		return ""
	}
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	slug, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(baseDomain))
	if !ok || strings.Contains(slug, ".") {
		return ""
	}
	return slug
}

// Middleware resolves the tenant of each request (route variable "tenant",
// else the Host subdomain under baseDomain), refuses unknown (404), suspended
// (403) and not-yet-migrated (503) tenants, and puts the tenant in the context.
func Middleware(reg Resolver, baseDomain string, onError ErrorWriter, onResolved func(*http.Request, *tenancy.Tenant)) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			slug := mux.Vars(req)["tenant"]
			if slug == "" {
				slug = SlugFromHost(req.Host, baseDomain)
			}
			t, err := reg.Resolve(req.Context(), slug)
			if err == nil {
				err = servable(t, reg.LatestVersion())
			}
			if err != nil {
				onError(w, req, err)
				return
			}
			if onResolved != nil {
				onResolved(req, t)
			}
			next.ServeHTTP(w, req.WithContext(tenancy.WithTenant(req.Context(), t)))
		})
	}
}

// servable decides whether requests may reach a resolved tenant.
func servable(t *tenancy.Tenant, latest int64) error {
	switch {
	case t.Status == tenancy.StatusSuspended:
		return tenancy.ErrTenantSuspended
	case t.Status != tenancy.StatusActive:
		return tenancy.ErrTenantNotFound
	case t.SchemaVersion < latest:
		return tenancy.ErrTenantBehind
	}
	return nil
}
