// Package obs holds PatchDesk's observability plumbing: the Prometheus
// registry and HTTP metrics, request ids, and the per-request log line.
package obs

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// StatusClientClosed is the status recorded for a request whose client went
// away before the answer (nginx's 499).
const StatusClientClosed = 499

// Metrics are the HTTP-level metrics shared by every route.
type Metrics struct {
	Registry        *prometheus.Registry
	requestDuration *prometheus.HistogramVec
}

// NewMetrics builds a registry with Go/process collectors and the HTTP histogram.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "patchdesk_http_request_duration_seconds",
			Help:    "HTTP request latency by route template, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(m.requestDuration)
	return m
}

// RequestInfo accumulates what inner handlers learn about a request (route,
// tenant) so the outer middleware can log and measure it.
type RequestInfo struct {
	ID     string
	Route  string
	Tenant string
	// method is the normalised method (NormalizeMethod); log is the
	// process logger that Logger derives the request's logger from.
	method string
	log    *slog.Logger
}

type infoKey struct{}

// Info returns the request's RequestInfo (a zero one outside Middleware).
func Info(ctx context.Context) *RequestInfo {
	if ri, ok := ctx.Value(infoKey{}).(*RequestInfo); ok {
		return ri
	}
	return &RequestInfo{}
}

// Logger returns the request-scoped logger: the process logger carrying the
// request id, method, route and (once resolved) tenant of the request in
// ctx, or slog.Default() outside Middleware. Attributes are read when it is
// called, so a logger taken after routing carries the route.
func Logger(ctx context.Context) *slog.Logger {
	ri, ok := ctx.Value(infoKey{}).(*RequestInfo)
	if !ok || ri.log == nil {
		return slog.Default()
	}
	attrs := []any{slog.String("request_id", ri.ID), slog.String("method", ri.method), slog.String("route", ri.Route)}
	if ri.Tenant != "" {
		attrs = append(attrs, slog.String("tenant", ri.Tenant))
	}
	return ri.log.With(attrs...)
}

// knownMethods are the methods that get their own metric label; anything
// else is "other", so a client cannot mint series with made-up methods.
var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// NormalizeMethod maps an HTTP method to the fixed set of metric and log
// labels: the standard methods as themselves, anything else "other".
func NormalizeMethod(m string) string {
	if slices.Contains(knownMethods, m) {
		return m
	}
	return "other"
}

// SetTenant records the tenant slug for the request's log line.
func SetTenant(r *http.Request, slug string) { Info(r.Context()).Tenant = slug }

// RouteTagger is router middleware that records the matched route template.
func RouteTagger(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tpl, err := route.GetPathTemplate(); err == nil {
				Info(r.Context()).Route = tpl
			}
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Middleware assigns a request id (or keeps a sane incoming X-Request-Id),
// puts a logger carrying it in the context, recovers panics as 500, and logs
// and measures every request.
func (m *Metrics) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ri := &RequestInfo{ID: requestID(r), Route: "unmatched", method: NormalizeMethod(r.Method), log: log}
			w.Header().Set("X-Request-Id", ri.ID)
			ctx := context.WithValue(r.Context(), infoKey{}, ri)
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				if p := recover(); p != nil {
					Logger(ctx).ErrorContext(ctx, "panic", "panic", p)
					if rec.status == 0 {
						http.Error(rec, `{"type":"about:blank","title":"Internal Server Error","status":500}`, http.StatusInternalServerError)
					}
				}
				status := max(rec.status, http.StatusOK)
				if r.Context().Err() != nil && status >= http.StatusInternalServerError {
					status = StatusClientClosed // nobody read the answer: not a server failure
				}
				d := time.Since(start)
				m.requestDuration.WithLabelValues(ri.Route, ri.method, strconv.Itoa(status)).Observe(d.Seconds())
				log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("request_id", ri.ID), slog.String("tenant", ri.Tenant),
					slog.String("method", ri.method), slog.String("route", ri.Route),
					slog.Int("status", status), slog.Duration("duration", d))
			}()
			next.ServeHTTP(rec, r.WithContext(ctx))
		})
	}
}

func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if len(id) > 0 && len(id) <= 64 {
		ok := true
		for _, c := range id {
			if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	return rand.Text()
}
