package tickets

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	created       *prometheus.CounterVec
	updated       *prometheus.CounterVec
	outboxWritten prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchdesk_tickets_created_total", Help: "Tickets created, by tenant tier.",
		}, []string{"tier"}),
		updated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchdesk_tickets_updated_total", Help: "Ticket changes (patch, comment), by tenant tier.",
		}, []string{"tier"}),
		outboxWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchdesk_outbox_rows_written_total", Help: "Outbox events written in ticket transactions.",
		}),
	}
	for _, c := range []prometheus.Collector{m.created, m.updated, m.outboxWritten} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ticket metrics: %w", err)
		}
	}
	return m, nil
}
