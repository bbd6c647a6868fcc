package obs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchdesk/patchdesk/modules/obs"
)

func TestNormalizeMethod(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE",
		"OPTIONS": "OPTIONS", "get": "other", "PROPFIND": "other", "CONNECT": "other", "TRACE": "other", "": "other",
	} {
		if got := obs.NormalizeMethod(in); got != want {
			t.Errorf("NormalizeMethod(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoggerCarriesRequestAttributes is issue 10.7: the logger a handler
// takes from its context names the request id, method, route and tenant.
func TestLoggerCarriesRequestAttributes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	r := mux.NewRouter()
	r.Use(obs.RouteTagger)
	r.HandleFunc("/t/{tenant}/things", func(w http.ResponseWriter, r *http.Request) {
		obs.SetTenant(r, mux.Vars(r)["tenant"])
		obs.Logger(r.Context()).WarnContext(r.Context(), "inside")
		w.WriteHeader(http.StatusNoContent)
	})
	h := obs.NewMetrics().Middleware(log)(r)
	req := httptest.NewRequest(http.MethodGet, "/t/acme/things", nil)
	req.Header.Set("X-Request-Id", "abc-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var inside map[string]any
	for _, line := range strings.Split(buf.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "inside" {
			inside = l
		}
	}
	want := map[string]any{"request_id": "abc-1", "method": "GET", "route": "/t/{tenant}/things", "tenant": "acme"}
	for k, v := range want {
		if inside[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, inside[k], v, inside)
		}
	}
	if obs.Logger(context.Background()) != slog.Default() {
		t.Error("outside a request Logger is not slog.Default()")
	}
}

// TestRandomMethodsAddNoSeries is issue 9.7: the method label is one of a
// fixed set, so 300 invented methods make one "other" series, not 300.
func TestRandomMethodsAddNoSeries(t *testing.T) {
	t.Parallel()
	m := obs.NewMetrics()
	h := m.Middleware(slog.New(slog.DiscardHandler))(http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/", nil))
	before := series(t, m)
	for i := range 300 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("X"+strings.Repeat("Z", i%7)+string(rune('A'+i%26))+string(rune('A'+i/26)), "/", nil))
	}
	if after := series(t, m); after != before {
		t.Fatalf("300 random methods: %d series, was %d", after, before)
	}
}

func series(t *testing.T, m *obs.Metrics) int {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "patchdesk_http_request_duration_seconds" {
			n += len(mf.GetMetric())
		}
	}
	return n
}

// TestCachedCollectorScrapesFromCache is issue 9.7: gauges that query the
// control database run once per refresh, never once per scrape.
func TestCachedCollectorScrapesFromCache(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	inner := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "expensive", Help: "counts its own collections"},
		func() float64 { return float64(calls.Add(1)) })
	reg := prometheus.NewRegistry()
	cached := obs.NewCachedCollector(inner, time.Hour)
	reg.MustRegister(cached)
	for range 50 {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("50 scrapes collected the inner gauge %d times", n)
	}
	mfs, _ := reg.Gather()
	if len(mfs) != 1 || mfs[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("cached value: %v", mfs)
	}
}

// TestCachedCollectorRefreshesWhenStale: past its ttl, a scrape answers from
// the cache at once and starts one refresh; a later scrape sees the new value.
func TestCachedCollectorRefreshesWhenStale(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	inner := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "expensive", Help: "counts its own collections"},
		func() float64 { return float64(calls.Add(1)) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(obs.NewCachedCollector(inner, time.Nanosecond))
	value := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	if v := value(); v != 1 {
		t.Fatalf("first scrape %v", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for value() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the stale cache was never refreshed")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPanicIsA500WithTheRequestID: a handler that panics answers 500 and
// the panic is logged with the request's id.
func TestPanicIsA500WithTheRequestID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := obs.NewMetrics().Middleware(slog.New(slog.NewJSONHandler(&buf, nil)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("nil map")
	}))
	req := httptest.NewRequest(http.MethodPost, "/x", nil)
	req.Header.Set("X-Request-Id", "panicky-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "nil map") {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	found := false
	for _, line := range strings.Split(buf.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "panic" {
			found = l["request_id"] == "panicky-1" && l["level"] == "ERROR" && l["panic"] == "nil map"
		}
	}
	if !found {
		t.Fatalf("no panic line with the request id in %s", buf.String())
	}
}
