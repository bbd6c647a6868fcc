package obs

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// CachedCollector serves another collector's metrics from a cache so that
// scrapes cost nothing: gauges that query a database (the tenant counts)
// would otherwise run that query on every scrape, whoever sends it and how
// often. The first scrape fills the cache; later scrapes answer from it
// and, once it is older than ttl, start one background refresh (stale while
// revalidating), so a slow or unreachable database never delays a scrape.
type CachedCollector struct {
	inner prometheus.Collector
	ttl   time.Duration
	now   func() time.Time

	mu         sync.Mutex
	metrics    []prometheus.Metric
	filled     time.Time
	refreshing bool
}

// NewCachedCollector caches inner's metrics for ttl (default 15 s).
func NewCachedCollector(inner prometheus.Collector, ttl time.Duration) *CachedCollector {
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	return &CachedCollector{inner: inner, ttl: ttl, now: time.Now}
}

// Describe forwards the inner collector's descriptions.
func (c *CachedCollector) Describe(ch chan<- *prometheus.Desc) { c.inner.Describe(ch) }

// Collect sends the cached metrics, filling the cache on first use.
func (c *CachedCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.filled.IsZero() {
		c.mu.Unlock()
		c.refresh()
		c.mu.Lock()
	} else if !c.refreshing && c.now().Sub(c.filled) >= c.ttl {
		c.refreshing = true
		go c.refresh()
	}
	cached := c.metrics
	c.mu.Unlock()
	for _, m := range cached {
		ch <- m
	}
}

// refresh gathers the inner collector once and replaces the cache.
func (c *CachedCollector) refresh() {
	ch := make(chan prometheus.Metric)
	var fresh []prometheus.Metric
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			fresh = append(fresh, m)
		}
	}()
	c.inner.Collect(ch)
	close(ch)
	<-done
	for i, m := range fresh {
		fresh[i] = freeze(m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.metrics, c.filled, c.refreshing = fresh, c.now(), false
}

// frozen is a metric's value written once: some metrics (GaugeFunc) compute
// their value when written, which would run the query again at each scrape.
type frozen struct {
	desc *prometheus.Desc
	pb   *dto.Metric
	err  error
}

func freeze(m prometheus.Metric) prometheus.Metric {
	f := &frozen{desc: m.Desc(), pb: &dto.Metric{}}
	f.err = m.Write(f.pb)
	return f
}

// Desc returns the description of the frozen metric.
func (f *frozen) Desc() *prometheus.Desc { return f.desc }

// Write copies the frozen value.
func (f *frozen) Write(out *dto.Metric) error {
	if f.err != nil {
		return f.err
	}
	proto.Reset(out)
	proto.Merge(out, f.pb)
	return nil
}
