package tenancy

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

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
func (r *Registry) Middleware(baseDomain string, onError ErrorWriter, onResolved func(*http.Request, *Tenant)) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			slug := mux.Vars(req)["tenant"]
			if slug == "" {
				slug = SlugFromHost(req.Host, baseDomain)
			}
			t, err := r.Resolve(req.Context(), slug)
			if err == nil {
				err = r.servable(t)
			}
			if err != nil {
				onError(w, req, err)
				return
			}
			if onResolved != nil {
				onResolved(req, t)
			}
			next.ServeHTTP(w, req.WithContext(WithTenant(req.Context(), t)))
		})
	}
}

// servable decides whether requests may reach a resolved tenant.
func (r *Registry) servable(t *Tenant) error {
	switch {
	case t.Status == StatusSuspended:
		return ErrTenantSuspended
	case t.Status != StatusActive:
		return ErrTenantNotFound
	case t.SchemaVersion < r.latest:
		return ErrTenantBehind
	}
	return nil
}
