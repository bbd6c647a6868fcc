// Package obs holds PatchDesk's observability plumbing: the Prometheus
// registry and HTTP metrics, request ids, and the per-request log line.
package obs

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

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
}

type infoKey struct{}

// Info returns the request's RequestInfo (a zero one outside Middleware).
func Info(ctx context.Context) *RequestInfo {
	if ri, ok := ctx.Value(infoKey{}).(*RequestInfo); ok {
		return ri
	}
	return &RequestInfo{}
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
			ri := &RequestInfo{ID: requestID(r), Route: "unmatched"}
			w.Header().Set("X-Request-Id", ri.ID)
			ctx := context.WithValue(r.Context(), infoKey{}, ri)
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(ctx, "panic", "request_id", ri.ID, "panic", p)
					if rec.status == 0 {
						http.Error(rec, `{"type":"about:blank","title":"Internal Server Error","status":500}`, http.StatusInternalServerError)
					}
				}
				status := max(rec.status, http.StatusOK)
				d := time.Since(start)
				m.requestDuration.WithLabelValues(ri.Route, r.Method, strconv.Itoa(status)).Observe(d.Seconds())
				log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("request_id", ri.ID), slog.String("tenant", ri.Tenant),
					slog.String("method", r.Method), slog.String("route", ri.Route),
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
