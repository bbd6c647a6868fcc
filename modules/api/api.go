// Package api assembles PatchDesk's HTTP surface: operational endpoints,
// global routes, and the tenant-scoped routes of every module behind the
// tenant router and authentication.
package api

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/idempotency"
	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/modules/search"
	"github.com/patchdesk/patchdesk/modules/tickets"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/router"
)

// Config configures the HTTP surface and the modules behind it.
type Config struct {
	// BaseDomain, when set, also routes https://{tenant}.{BaseDomain}/api/v1/….
	BaseDomain  string
	Members     members.Config
	MembersHTTP members.HandlerConfig
	Tickets     tickets.Config
	// Attachments names the blob store (required) and the size and quota limits.
	Attachments attachments.Config
	Notify      notify.Config
	Jobs        jobs.Config
	Idempotency idempotency.Config
	// IdempotencyExpireEvery is how often expired idempotency keys are
	// deleted (default hourly).
	IdempotencyExpireEvery time.Duration
	// TokenPerMinute and TenantPerMinute limit authenticated requests per
	// member (over all their sessions and tokens) and per tenant (defaults
	// 1,200 and 30,000).
	TokenPerMinute  float64
	TenantPerMinute float64
	// ReadyChecks run on /readyz besides the control database ping, each
	// reported under its name.
	ReadyChecks []ReadyCheck
	// TrustForwardedProto lets X-Forwarded-Proto: https (from a TLS-terminating
	// proxy) count as TLS for HSTS.
	TrustForwardedProto bool
	// MetricsToken, when set, lets a request with "Authorization: Bearer
	// <MetricsToken>" read /metrics on the public listener from anywhere.
	MetricsToken string
}

// ReadyCheck is a named dependency check of /readyz.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// App is the assembled application: its HTTP handler and the services that
// commands (the demo tenant, the CLI) also use.
type App struct {
	Handler http.Handler
	// OpsHandler serves only /healthz, /readyz and /metrics (worker processes).
	OpsHandler http.Handler
	// MetricsHandler serves /metrics (and /healthz) ungated, for the
	// dedicated metrics listener.
	MetricsHandler http.Handler
	Members        *members.Service
	Tickets        *tickets.Service
	Notify         *notify.Service
	Search         *search.Service
	Reports        *reports.Service
	// Attachments stores files in the blob store; Close releases it.
	Attachments *attachments.Service
	// Jobs works scheduled jobs (deliveries, exports) in the background.
	Jobs *jobs.Queue

	router *mux.Router
}

// Route is one method and path template the API serves.
type Route struct {
	Method, Path string
}

// Routes lists every method and path template of Handler, for the test that
// holds docs/openapi.yaml complete. Host-routed copies (BaseDomain) are
// listed under their path only.
func (a *App) Routes() ([]Route, error) {
	var out []Route
	err := a.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a subrouter's host-only or prefix-less node
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // a prefix node (PathPrefix subrouter), not an endpoint
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: path})
		}
		return nil
	})
	return out, err
}

// deps are what routes are mounted from.
type deps struct {
	cfg     Config
	log     *slog.Logger
	metrics *obs.Metrics
	reg     *tenancy.Registry
	members *members.Handler
	limits  *limits
	idem    *idempotency.Store
	ref     *reference
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
	asvc, err := attachments.NewService(ctx, cfg.Attachments, reg, az, tsvc)
	if err != nil {
		return nil, err
	}
	tsvc.UseAttachments(commentFiles{svc: asvc})
	cfg.ReadyChecks = append(cfg.ReadyChecks, ReadyCheck{Name: "blob_store", Check: asvc.Ping})
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
	idem, err := idempotency.NewStore(cfg.Idempotency, reg)
	if err != nil {
		return nil, err
	}
	if err := idem.Schedule(queue, reg, cmp.Or(cfg.IdempotencyExpireEvery, time.Hour)); err != nil {
		return nil, err
	}
	d := deps{cfg: cfg, idem: idem, log: log, metrics: metrics, reg: reg, members: members.NewHandler(msvc, cfg.MembersHTTP),
		limits: newLimits(cfg.TokenPerMinute, cfg.TenantPerMinute),
		modules: []interface{ Routes(*mux.Router) }{
			tickets.NewHandler(tsvc),
			audit.NewHandler(audit.NewService(reg, az)),
			notify.NewHandler(nsvc),
			search.NewHandler(ssvc),
			reports.NewHandler(rsvc),
			attachments.NewHandler(asvc),
		}}
	ref, err := newReference()
	if err != nil {
		return nil, err
	}
	d.ref = ref
	h, router := handler(d)
	return &App{Handler: h, OpsHandler: opsHandler(d), MetricsHandler: metricsHandler(d), Members: msvc, Tickets: tsvc,
		Notify: nsvc, Search: ssvc, Reports: rsvc, Attachments: asvc, Jobs: queue, router: router}, nil
}

// opsRouter serves the operational endpoints every process has; /metrics
// only to the peers metricsGate admits.
func opsRouter(d deps) *mux.Router {
	root := mux.NewRouter()
	root.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "no such route"))
	})
	root.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, errs.Errorf(errs.ErrMethod, "method %s not allowed here", r.Method))
	})
	root.Use(obs.RouteTagger)
	root.HandleFunc("/healthz", healthz).Methods(http.MethodGet)
	root.HandleFunc("/readyz", readyz(d)).Methods(http.MethodGet)
	root.Handle("/metrics", metricsGate(d.cfg.MetricsToken, scrape(d))).Methods(http.MethodGet)
	return root
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func scrape(d deps) http.Handler {
	return promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{})
}

// outer wraps a router in the middleware every listener shares: security
// headers, request id, logging and metrics, then the edge validation.
func outer(d deps, h http.Handler) http.Handler {
	return securityHeaders(d.cfg.TrustForwardedProto)(d.metrics.Middleware(d.log)(validateEdge(h)))
}

func opsHandler(d deps) http.Handler { return outer(d, opsRouter(d)) }

// metricsHandler is what the dedicated metrics listener serves.
func metricsHandler(d deps) http.Handler {
	root := mux.NewRouter()
	root.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "no such route"))
	})
	root.Handle("/metrics", scrape(d)).Methods(http.MethodGet)
	root.HandleFunc("/healthz", healthz).Methods(http.MethodGet)
	return securityHeaders(d.cfg.TrustForwardedProto)(root)
}

func handler(d deps) (http.Handler, *mux.Router) {
	root := opsRouter(d)
	d.members.GlobalRoutes(root)
	d.ref.routes(root)

	tenantMW := router.Middleware(d.reg, d.cfg.BaseDomain, respond.Error, func(r *http.Request, t *tenancy.Tenant) {
		obs.SetTenant(r, t.Slug)
	})
	if d.cfg.BaseDomain != "" {
		mountTenant(root.Host("{tenant:[a-z0-9-]+}."+d.cfg.BaseDomain).PathPrefix("/api/v1").Subrouter(), tenantMW, d)
	}
	mountTenant(root.PathPrefix("/t/{tenant}/api/v1").Subrouter(), tenantMW, d)
	return outer(d, root), root
}

func mountTenant(r *mux.Router, tenantMW mux.MiddlewareFunc, d deps) {
	r.Use(tenantMW)
	d.members.PublicRoutes(r)
	authed := r.NewRoute().Subrouter()
	// Idempotency after authentication: the caller is part of the key.
	authed.Use(d.members.Authenticate, d.limits.middleware, d.idem.Middleware)
	d.members.Routes(authed)
	for _, m := range d.modules {
		m.Routes(authed)
	}
}

// readiness is the body of /readyz.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz reports each dependency: "ok", or a short client-safe reason. It
// answers 503 while any is failing, so a load balancer stops sending
// traffic, and recovers by itself: every call checks afresh.
func readyz(d deps) http.HandlerFunc {
	checks := append([]ReadyCheck{{Name: "control_db", Check: d.reg.Ping}}, d.cfg.ReadyChecks...)
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// Concurrently, so that one check using up the timeout does not
		// make the others look timed out too.
		failures := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() { failures[i] = c.Check(ctx) })
		}
		wg.Wait()
		body := readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
		for i, c := range checks {
			body.Checks[c.Name] = "ok"
			if err := failures[i]; err != nil {
				obs.Logger(ctx).WarnContext(ctx, "not ready", "check", c.Name, "err", err)
				body.Status, body.Checks[c.Name] = "not ready", readyFailure(err)
			}
		}
		if body.Status != "ready" {
			w.Header().Set("Retry-After", "1")
			respond.JSON(w, http.StatusServiceUnavailable, body)
			return
		}
		respond.JSON(w, http.StatusOK, body)
	}
}

// readyFailure names a failed check without its error text, which may hold
// host names, ports or user names.
func readyFailure(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "error: timed out"
	case errs.IsTransient(err):
		return "error: unreachable"
	}
	return "error: failed"
}
