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

	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/modules/search"
	"github.com/patchdesk/patchdesk/modules/tickets"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Config configures the HTTP surface and the modules behind it.
type Config struct {
	// BaseDomain, when set, also routes https://{tenant}.{BaseDomain}/api/v1/….
	BaseDomain  string
	Members     members.Config
	MembersHTTP members.HandlerConfig
	Tickets     tickets.Config
	Notify      notify.Config
	Jobs        jobs.Config
	// TokenPerMinute and TenantPerMinute limit authenticated requests per
	// member (over all their sessions and tokens) and per tenant (defaults
	// 1,200 and 30,000).
	TokenPerMinute  float64
	TenantPerMinute float64
	// ReadyChecks run on /readyz besides the control database ping.
	ReadyChecks []func(context.Context) error
}

// App is the assembled application: its HTTP handler and the services that
// commands (the demo tenant, the CLI) also use.
type App struct {
	Handler http.Handler
	// OpsHandler serves only /healthz, /readyz and /metrics (worker processes).
	OpsHandler http.Handler
	Members    *members.Service
	Tickets    *tickets.Service
	Notify     *notify.Service
	Search     *search.Service
	Reports    *reports.Service
	// Jobs works scheduled jobs (deliveries, exports) in the background.
	Jobs *jobs.Queue
}

// deps are what routes are mounted from.
type deps struct {
	cfg     Config
	log     *slog.Logger
	metrics *obs.Metrics
	reg     *tenancy.Registry
	members *members.Handler
	limits  *limits
	modules []interface{ Routes(*mux.Router) }
}

// New builds every module and the complete HTTP handler.
func New(ctx context.Context, reg *tenancy.Registry, log *slog.Logger, metrics *obs.Metrics, cfg Config) (*App, error) {
	az, err := authz.New(ctx)
	if err != nil {
		return nil, err
	}
	msvc, err := members.NewService(cfg.Members, reg, reg, az)
	if err != nil {
		return nil, err
	}
	tsvc, err := tickets.NewService(cfg.Tickets, reg, az, msvc, metrics.Registry)
	if err != nil {
		return nil, err
	}
	if cfg.Notify.Log == nil {
		cfg.Notify.Log = log
	}
	if cfg.Jobs.Log == nil {
		cfg.Jobs.Log = log
	}
	queue, err := jobs.New(cfg.Jobs, reg)
	if err != nil {
		return nil, err
	}
	nsvc, err := notify.NewService(cfg.Notify, reg, msvc, az, queue, metrics.Registry)
	if err != nil {
		return nil, err
	}
	ssvc, err := search.NewService(reg, tsvc, az, metrics.Registry, queue)
	if err != nil {
		return nil, err
	}
	rsvc, err := reports.NewService(reg, msvc, tsvc, az, queue)
	if err != nil {
		return nil, err
	}
	d := deps{cfg: cfg, log: log, metrics: metrics, reg: reg, members: members.NewHandler(msvc, cfg.MembersHTTP),
		limits: newLimits(cfg.TokenPerMinute, cfg.TenantPerMinute),
		modules: []interface{ Routes(*mux.Router) }{
			tickets.NewHandler(tsvc),
			audit.NewHandler(audit.NewService(reg, az)),
			notify.NewHandler(nsvc),
			search.NewHandler(ssvc),
			reports.NewHandler(rsvc),
		}}
	return &App{Handler: handler(d), OpsHandler: opsHandler(d), Members: msvc, Tickets: tsvc, Notify: nsvc, Search: ssvc, Reports: rsvc, Jobs: queue}, nil
}

// opsRouter serves the operational endpoints every process has.
func opsRouter(d deps) *mux.Router {
	root := mux.NewRouter()
	root.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "no such route"))
	})
	root.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, errs.Errorf(errs.ErrMethod, "method %s not allowed here", r.Method))
	})
	root.Use(obs.RouteTagger)
	root.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	root.HandleFunc("/readyz", readyz(d)).Methods(http.MethodGet)
	root.Handle("/metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	return root
}

func opsHandler(d deps) http.Handler { return d.metrics.Middleware(d.log)(opsRouter(d)) }

func handler(d deps) http.Handler {
	root := opsRouter(d)
	d.members.GlobalRoutes(root)

	tenantMW := d.reg.Middleware(d.cfg.BaseDomain, respond.Error, func(r *http.Request, t *tenancy.Tenant) {
		obs.SetTenant(r, t.Slug)
	})
	if d.cfg.BaseDomain != "" {
		mountTenant(root.Host("{tenant:[a-z0-9-]+}."+d.cfg.BaseDomain).PathPrefix("/api/v1").Subrouter(), tenantMW, d)
	}
	mountTenant(root.PathPrefix("/t/{tenant}/api/v1").Subrouter(), tenantMW, d)
	return d.metrics.Middleware(d.log)(root)
}

func mountTenant(r *mux.Router, tenantMW mux.MiddlewareFunc, d deps) {
	r.Use(tenantMW)
	d.members.PublicRoutes(r)
	authed := r.NewRoute().Subrouter()
	authed.Use(d.members.Authenticate, d.limits.middleware)
	d.members.Routes(authed)
	for _, m := range d.modules {
		m.Routes(authed)
	}
}

func readyz(d deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := d.reg.Ping(ctx)
		for _, check := range d.cfg.ReadyChecks {
			err = errors.Join(err, check(ctx))
		}
		if err != nil {
			d.log.WarnContext(ctx, "not ready", "err", err)
			respond.Error(w, r, errs.Errorf(errs.ErrUnavailable, "dependencies unavailable"))
			return
		}
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}
