// Package api assembles PatchDesk's HTTP surface: operational endpoints,
// global routes, and the tenant-scoped routes of every module behind the
// tenant router and authentication.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Module is a business module that serves authenticated tenant routes.
type Module interface {
	Routes(r *mux.Router)
}

// Deps are what the HTTP surface is built from.
type Deps struct {
	Log      *slog.Logger
	Metrics  *obs.Metrics
	Registry *tenancy.Registry
	Members  *members.Handler
	// Modules mount further authenticated tenant routes (tickets, …).
	Modules []Module
	// BaseDomain, when set, also routes https://{tenant}.{BaseDomain}/api/v1/….
	BaseDomain string
	// ReadyChecks run on /readyz besides the control database ping.
	ReadyChecks []func(context.Context) error
}

// New returns the complete HTTP handler.
func New(d Deps) http.Handler {
	root := mux.NewRouter()
	root.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, respond.Errorf(respond.ErrNotFound, "no such route"))
	})
	root.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, respond.Errorf(respond.ErrMethod, "method %s not allowed here", r.Method))
	})
	root.Use(obs.RouteTagger)

	root.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	root.HandleFunc("/readyz", readyz(d)).Methods(http.MethodGet)
	root.Handle("/metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	d.Members.GlobalRoutes(root)

	tenantMW := d.Registry.Middleware(d.BaseDomain, respond.Error, func(r *http.Request, t *tenancy.Tenant) {
		obs.SetTenant(r, t.Slug)
	})
	if d.BaseDomain != "" {
		mountTenant(root.Host("{tenant:[a-z0-9-]+}."+d.BaseDomain).PathPrefix("/api/v1").Subrouter(), tenantMW, d)
	}
	mountTenant(root.PathPrefix("/t/{tenant}/api/v1").Subrouter(), tenantMW, d)
	return d.Metrics.Middleware(d.Log)(root)
}

func mountTenant(r *mux.Router, tenantMW mux.MiddlewareFunc, d Deps) {
	r.Use(tenantMW)
	d.Members.PublicRoutes(r)
	authed := r.NewRoute().Subrouter()
	authed.Use(d.Members.Authenticate)
	d.Members.Routes(authed)
	for _, m := range d.Modules {
		m.Routes(authed)
	}
}

func readyz(d Deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := d.Registry.Ping(ctx)
		for _, check := range d.ReadyChecks {
			err = errors.Join(err, check(ctx))
		}
		if err != nil {
			d.Log.WarnContext(ctx, "not ready", "err", err)
			respond.Error(w, r, respond.Errorf(respond.ErrUnavailable, "dependencies unavailable"))
			return
		}
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}
