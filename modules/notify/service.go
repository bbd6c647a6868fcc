// Package notify turns ticket events into what people see: in-app
// notifications, emails and signed webhooks. It consumes events from Kafka
// (idempotently, by event id), records every email and webhook as a delivery
// row in the tenant schema, and sends them from River jobs that retry with
// exponential backoff until sent or dead. Sending never happens inside a
// database transaction and never touches the ticket write path.
package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/tenancy"
)

// ConsumerGroup is the Kafka consumer group of the notify consumer.
const ConsumerGroup = "patchdesk-notify"

// Config configures notifications.
type Config struct {
	// MailFrom is the From header of emails (default "PatchDesk <notifications@patchdesk.local>").
	MailFrom string
	// SMTPURL (smtp://host:port) sends email over SMTP; empty writes .eml files to MailDir.
	SMTPURL string
	MailDir string
	// AllowPrivateWebhooks permits webhook targets in private and loopback ranges.
	AllowPrivateWebhooks bool
	// WebhookTimeout bounds one webhook POST (default 10s).
	WebhookTimeout time.Duration
	// MaxAttempts is the number of attempts before a delivery is dead (default 12).
	MaxAttempts int
	// RetryBase and RetryMax shape the exponential backoff (defaults 30s and 2h:
	// 12 attempts span about eight hours).
	RetryBase time.Duration
	RetryMax  time.Duration
	// AttemptTimeout bounds one delivery attempt as a job (default 1m); keep
	// it below the job queue's RescueAfter, or a slow attempt is run twice.
	AttemptTimeout time.Duration
	// ReconcileEvery is how often each database schedules the due deliveries
	// that lost their job (default 20s); see Reconcile.
	ReconcileEvery time.Duration
	Log            *slog.Logger
}

// Registry is what notify needs from tenancy.
type Registry interface {
	tenancy.TxRunner
	ByID(ctx context.Context, id uuid.UUID) (*tenancy.Tenant, error)
	List(ctx context.Context) ([]*tenancy.Tenant, error)
}

// Directory answers questions about members; members.Service implements it.
type Directory interface {
	MemberByEmail(ctx context.Context, tx tenancy.Tx, email string) (uuid.UUID, string, bool, error)
	MemberContact(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (email, role string, err error)
}

// Service implements notifications, webhooks and deliveries.
type Service struct {
	cfg     Config
	reg     Registry
	dir     Directory
	authz   *authz.Authorizer
	mailer  Mailer
	http    *http.Client
	metrics *metrics
	jobs    *jobs.Queue
}

type metrics struct {
	outcomes *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewService builds the notify service and registers its metrics.
func NewService(cfg Config, reg Registry, dir Directory, az *authz.Authorizer, q *jobs.Queue, prom prometheus.Registerer) (*Service, error) {
	cfg.MailFrom = cmp.Or(cfg.MailFrom, "PatchDesk <notifications@patchdesk.local>")
	cfg.MailDir = cmp.Or(cfg.MailDir, "data/mail")
	cfg.WebhookTimeout = cmp.Or(cfg.WebhookTimeout, 10*time.Second)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 12)
	cfg.RetryBase = cmp.Or(cfg.RetryBase, 30*time.Second)
	cfg.RetryMax = cmp.Or(cfg.RetryMax, 2*time.Hour)
	cfg.ReconcileEvery = cmp.Or(cfg.ReconcileEvery, 20*time.Second)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, time.Minute)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if reg == nil || dir == nil || az == nil || q == nil || prom == nil {
		return nil, errors.New("notify: registry, directory, authorizer, job queue and metrics registry are required")
	}
	mailer, err := NewMailer(cfg.SMTPURL, cfg.MailDir)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchdesk_deliveries_total",
			Help: "Delivery attempts by channel and outcome (sent, failed, dead)."}, []string{"channel", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "patchdesk_delivery_latency_seconds",
			Help:    "Time from the ticket change's commit to its successful delivery, by channel.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}}, []string{"channel"}),
	}
	if err := errors.Join(prom.Register(m.outcomes), prom.Register(m.latency)); err != nil {
		return nil, fmt.Errorf("notify metrics: %w", err)
	}
	s := &Service{cfg: cfg, reg: reg, dir: dir, authz: az, mailer: mailer, metrics: m, jobs: q,
		http: newWebhookClient(cfg.WebhookTimeout, cfg.AllowPrivateWebhooks)}
	if err := errors.Join(jobs.Add(q, &deliveryWorker{svc: s}), jobs.Add(q, &reconcileWorker{svc: s})); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	q.Periodic(cfg.ReconcileEvery, func(databaseID string) river.JobArgs { return reconcileArgs{DatabaseID: databaseID} })
	return s, nil
}

// HandleEvent is the Kafka consumer handler: it records notifications and
// deliveries for an event once (keyed by event id) and schedules the
// deliveries still pending. Redelivered events only re-schedule.
func (s *Service) HandleEvent(ctx context.Context, m kafka.Message) error {
	ev, ok, err := decodeTicketEvent(m.Value)
	if err != nil {
		return errors.Join(bus.ErrPermanent, err)
	}
	if !ok {
		return nil
	}
	t, err := s.reg.ByID(ctx, ev.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return nil // deleted tenants get no side effects
	}
	if err != nil {
		return err
	}
	if t.Status != tenancy.StatusActive {
		// Suspended: no side effects for what happened meanwhile, recorded as
		// such so the decision is visible (and final).
		return s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			_, err := outbox.MarkProcessed(ctx, tx, ConsumerGroup, ev.ID)
			return err
		})
	}
	var pending []pendingDelivery
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		fresh, err := outbox.MarkProcessed(ctx, tx, ConsumerGroup, ev.ID)
		if err != nil {
			return err
		}
		if fresh {
			if err := s.fanOut(ctx, tx, t, ev); err != nil {
				return err
			}
		}
		pending, err = pendingFor(ctx, tx, ev.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("notify event %s: %w", ev.ID, err)
	}
	return s.schedule(ctx, t, pending)
}

// HandleBatch is the batch form of HandleEvent: per tenant one transaction
// marks the batch's events processed in one statement, records the
// notifications and deliveries of the new ones (reading the tenant's
// webhooks once) and lists the pending deliveries of all of them in one
// query; then one insert schedules their jobs. A batch redone after a
// failure or a crash finds the events its committed transactions recorded
// already processed, and only re-schedules, as a redelivery does.
func (s *Service) HandleBatch(ctx context.Context, ms []kafka.Message) error {
	type tenantEvents struct {
		id  uuid.UUID
		evs []*ticketEvent
	}
	var order []*tenantEvents
	byTenant := map[uuid.UUID]*tenantEvents{}
	for _, m := range ms {
		ev, ok, err := decodeTicketEvent(m.Value)
		if err != nil {
			return errors.Join(bus.ErrPermanent, err)
		}
		if !ok {
			continue
		}
		te := byTenant[ev.TenantID]
		if te == nil {
			te = &tenantEvents{id: ev.TenantID}
			byTenant[ev.TenantID] = te
			order = append(order, te)
		}
		te.evs = append(te.evs, ev)
	}
	for _, te := range order {
		if err := s.handleTenantBatch(ctx, te.id, te.evs); err != nil {
			return err
		}
	}
	return nil
}

// handleTenantBatch is HandleBatch for one tenant's events.
func (s *Service) handleTenantBatch(ctx context.Context, tenantID uuid.UUID, evs []*ticketEvent) error {
	t, err := s.reg.ByID(ctx, tenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return nil // deleted tenants get no side effects
	}
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	if t.Status != tenancy.StatusActive {
		return s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			_, err := outbox.MarkProcessedMany(ctx, tx, ConsumerGroup, ids)
			return err
		})
	}
	var pending []pendingDelivery
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		fresh, err := outbox.MarkProcessedMany(ctx, tx, ConsumerGroup, ids)
		if err != nil {
			return err
		}
		var hooks []Webhook
		if len(fresh) > 0 {
			if hooks, err = activeWebhooks(ctx, tx); err != nil {
				return err
			}
		}
		for _, ev := range evs {
			if !fresh[ev.ID] {
				continue
			}
			delete(fresh, ev.ID) // a duplicate later in the batch is a redelivery
			if err := s.fanOutTo(ctx, tx, t, ev, hooks); err != nil {
				return fmt.Errorf("notify event %s: %w", ev.ID, err)
			}
		}
		pending, err = pendingForAll(ctx, tx, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("notify events: %w", err)
	}
	return s.schedule(ctx, t, pending)
}

// fanOut writes the in-app notifications and the deliveries of one event.
func (s *Service) fanOut(ctx context.Context, tx tenancy.Tx, t *tenancy.Tenant, ev *ticketEvent) error {
	hooks, err := activeWebhooks(ctx, tx)
	if err != nil {
		return err
	}
	return s.fanOutTo(ctx, tx, t, ev, hooks)
}

// fanOutTo is fanOut with the tenant's active webhooks already read.
func (s *Service) fanOutTo(ctx context.Context, tx tenancy.Tx, t *tenancy.Tenant, ev *ticketEvent, hooks []Webhook) error {
	if err := s.notifyMembers(ctx, tx, ev); err != nil {
		return err
	}
	if err := s.queueEmails(ctx, tx, t, ev); err != nil {
		return err
	}
	return s.queueWebhooks(ctx, tx, ev, hooks)
}

// notifyMembers notifies the assignee, the watchers and the requester (when
// a member), never the actor, and never a customer about an internal note.
func (s *Service) notifyMembers(ctx context.Context, tx tenancy.Tx, ev *ticketEvent) error {
	tk := ev.Data.Ticket
	who := map[uuid.UUID]bool{}
	if tk.AssigneeID != nil {
		who[*tk.AssigneeID] = true
	}
	for _, w := range ev.Data.Watchers {
		who[w] = true
	}
	if tk.RequesterEmail != nil {
		id, _, ok, err := s.dir.MemberByEmail(ctx, tx, *tk.RequesterEmail)
		if err != nil {
			return err
		}
		if ok {
			who[id] = true
		}
	}
	delete(who, ev.actor())
	title := fmt.Sprintf("#%d %s", tk.Number, tk.Title)
	for id := range who {
		_, role, err := s.dir.MemberContact(ctx, tx, id)
		if errors.Is(err, errs.ErrNotFound) {
			continue // gone or deactivated
		}
		if err != nil {
			return fmt.Errorf("notify member %s: %w", id, err)
		}
		if ev.internal() && role == authz.RoleCustomer {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notifications (member_id, event_id, type, ticket_number, title, summary)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, id, ev.ID, ev.Type, tk.Number, title, ev.summary()); err != nil {
			return fmt.Errorf("insert notification: %w", err)
		}
	}
	return nil
}

// queueEmails records the emails an event causes: ticket received (to the
// requester), a public reply (to the requester, unless they wrote it), and
// assigned (to the new assignee, unless they assigned themselves).
func (s *Service) queueEmails(ctx context.Context, tx tenancy.Tx, t *tenancy.Tenant, ev *ticketEvent) error {
	tk := ev.Data.Ticket
	domain := mailDomain(s.cfg.MailFrom)
	thread := fmt.Sprintf("<ticket-%s@%s>", tk.ID, domain)
	base := email{
		From:      s.cfg.MailFrom,
		ReplyTo:   fmt.Sprintf("reply+%s.%d@%s", t.Slug, tk.Number, domain),
		MessageID: fmt.Sprintf("<%s@%s>", ev.ID, domain),
		Thread:    thread,
		Date:      ev.OccurredAt,
	}
	var out []email
	switch ev.Data.Event.Type {
	case "created":
		if tk.RequesterEmail != nil {
			e := base
			e.To, e.MessageID = *tk.RequesterEmail, thread
			e.Subject = fmt.Sprintf("[#%d] We received your request: %s", tk.Number, tk.Title)
			e.Body = fmt.Sprintf("We received your request #%d, %q, and will get back to you.\n\nReply to this email to add to it.\n", tk.Number, tk.Title)
			out = append(out, e)
		}
	case "commented":
		c := ev.Data.Comment
		if c != nil && !c.Internal && tk.RequesterEmail != nil {
			id, _, isMember, err := s.dir.MemberByEmail(ctx, tx, *tk.RequesterEmail)
			if err != nil {
				return err
			}
			if !isMember || id != ev.actor() {
				e := base
				e.To = *tk.RequesterEmail
				e.Subject = fmt.Sprintf("Re: [#%d] %s", tk.Number, tk.Title)
				e.Body = c.Body + "\n"
				out = append(out, e)
			}
		}
	case "assigned":
		if tk.AssigneeID != nil && *tk.AssigneeID != ev.actor() {
			addr, _, err := s.dir.MemberContact(ctx, tx, *tk.AssigneeID)
			if errors.Is(err, errs.ErrNotFound) {
				return nil // assignee deactivated since: nobody to tell
			}
			if err != nil {
				return fmt.Errorf("assignee contact: %w", err)
			}
			e := base
			e.To = addr
			e.Subject = fmt.Sprintf("[#%d] Assigned to you: %s", tk.Number, tk.Title)
			e.Body = fmt.Sprintf("Ticket #%d, %q, is now assigned to you.\n", tk.Number, tk.Title)
			out = append(out, e)
		}
	}
	for _, e := range out {
		msg, err := e.render()
		if err != nil {
			return err
		}
		payload := map[string]string{"from": envelopeFrom(e.From), "to": e.To, "message": string(msg)}
		if err := insertDelivery(ctx, tx, "email", e.To, nil, ev, payload); err != nil {
			return err
		}
	}
	return nil
}

// queueWebhooks records one delivery per active webhook subscribed to the event.
func (s *Service) queueWebhooks(ctx context.Context, tx tenancy.Tx, ev *ticketEvent, hooks []Webhook) error {
	for _, h := range hooks {
		if !h.subscribes(ev.Type) {
			continue
		}
		if err := insertDelivery(ctx, tx, "webhook", h.URL, &h.ID, ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// schedule enqueues a River job per pending delivery; River's uniqueness by
// arguments makes re-scheduling the same (delivery, round) harmless.
func (s *Service) schedule(ctx context.Context, t *tenancy.Tenant, pending []pendingDelivery) error {
	_, err := s.scheduleNew(ctx, t, pending)
	return err
}

// scheduleNew is schedule, reporting how many jobs were new (the others
// were queued or running already).
func (s *Service) scheduleNew(ctx context.Context, t *tenancy.Tenant, pending []pendingDelivery) (int, error) {
	if len(pending) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(pending))
	for i, p := range pending {
		params[i] = river.InsertManyParams{Args: deliveryArgs{TenantID: t.ID, DeliveryID: p.ID, Round: p.Round},
			InsertOpts: &river.InsertOpts{MaxAttempts: s.cfg.MaxAttempts}}
	}
	n, err := s.jobs.InsertNew(ctx, t.DatabaseID, params...)
	if err != nil {
		return 0, fmt.Errorf("schedule deliveries: %w", err)
	}
	return n, nil
}

// backoff is the delay before attempt+1: exponential from RetryBase, capped
// at RetryMax, with ±20% jitter derived from the delivery so every process
// computes the same time.
func (s *Service) backoff(id uuid.UUID, attempt int) time.Duration {
	d := s.cfg.RetryBase << min(max(attempt-1, 0), 30)
	if d <= 0 || d > s.cfg.RetryMax {
		d = s.cfg.RetryMax
	}
	h := fnv.New32a()
	h.Write(id[:])
	h.Write([]byte{byte(attempt)})
	jitter := float64(h.Sum32()%4001)/10000 - 0.2 // [-0.2, +0.2]
	return time.Duration(float64(d) * (1 + jitter))
}
