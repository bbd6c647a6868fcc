package tenancy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var tenantsDesc = prometheus.NewDesc("patchdesk_tenants", "Tenants by tier and status.", []string{"tier", "status"}, nil)

type tenantCollector struct{ r *Registry }

// Collector exports the number of tenants by tier and status, read from the
// control plane at scrape time.
func (r *Registry) Collector() prometheus.Collector { return tenantCollector{r} }

func (c tenantCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tenantsDesc }

func (c tenantCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.r.CountByTierStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(tenantsDesc, err)
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
