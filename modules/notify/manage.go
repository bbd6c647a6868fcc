package notify

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/tenancy"
)

// position is where a newest-first page continues: before (created_at, id).
type position struct {
	At time.Time `json:"a"`
	ID uuid.UUID `json:"i"`
}

// newestFirst decodes the cursor of a newest-first list; without one the
// page starts after everything that exists.
func newestFirst(cursor string) (position, error) {
	var p position
	if err := page.DecodeCursor(cursor, &p); err != nil {
		return p, err
	}
	if p.At.IsZero() {
		p.At = time.Now().Add(time.Hour)
	}
	return p, nil
}

// ListParams selects a newest-first page.
type ListParams struct {
	Cursor string
	Limit  int
	// UnreadOnly (notifications) and Status (deliveries) filter.
	UnreadOnly bool
	Status     string
}

// authorized runs fn in the tenant's transaction once sub may do action on resource.
func (s *Service) authorized(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, action, resource string,
	fn func(ctx context.Context, tx tenancy.Tx) error) error {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: action, Resource: resource}); err != nil {
		return err
	}
	return s.reg.Tx(ctx, t, fn)
}

// Notifications lists the caller's in-app notifications, newest first.
func (s *Service) Notifications(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p ListParams) (*page.Page[Notification], error) {
	before, err := newestFirst(p.Cursor)
	if err != nil {
		return nil, err
	}
	var items []Notification
	err = s.authorized(ctx, sub, t, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx) error {
		items, err = listNotifications(ctx, tx, sub.MemberID, p.UnreadOnly, before, p.Limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, p.Limit, func(last Notification) any { return position{At: last.CreatedAt, ID: last.ID} })
	return &pg, nil
}

// MarkRead marks one of the caller's notifications read.
func (s *Service) MarkRead(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, id uuid.UUID) error {
	return s.authorized(ctx, sub, t, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx) error {
		return markNotificationRead(ctx, tx, sub.MemberID, id)
	})
}

// MarkAllRead marks all the caller's notifications read.
func (s *Service) MarkAllRead(ctx context.Context, sub authz.Subject, t *tenancy.Tenant) error {
	return s.authorized(ctx, sub, t, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx) error {
		return markAllNotificationsRead(ctx, tx, sub.MemberID)
	})
}

// eventTypes are the event names webhooks may subscribe to.
var eventTypes = []string{"*", "ticket.created", "ticket.status_changed", "ticket.assigned", "ticket.priority_changed",
	"ticket.commented", "ticket.tags_changed", "ticket.title_changed", "ticket.deleted"}

// WebhookParams is the body of POST /webhooks.
type WebhookParams struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret *string  `json:"secret"`
}

// CreateWebhook registers a webhook; the answer carries its secret, shown only here.
func (s *Service) CreateWebhook(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p WebhookParams) (*Webhook, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.WebhooksManage, Resource: authz.ResourceNotify}); err != nil {
		return nil, err
	}
	hook, err := s.validWebhook(ctx, p)
	if err != nil {
		return nil, err
	}
	// Authorized above, before validation: a caller who may not manage
	// webhooks learns nothing about their URL.
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if err := insertWebhook(ctx, tx, hook, sub.MemberID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, sub.MemberID, "webhook.created", "webhook:"+hook.ID.String(), map[string]any{"url": hook.URL, "events": hook.Events})
	})
	if err != nil {
		return nil, err
	}
	return hook, nil
}

// maxWebhookURL is the length limit of webhooks.url.
const maxWebhookURL = 2000

// validWebhook checks a registration: target, events and secret.
func (s *Service) validWebhook(ctx context.Context, p WebhookParams) (*Webhook, error) {
	if utf8.RuneCountInString(p.URL) > maxWebhookURL { // the column's CHECK; before any DNS lookup
		return nil, errs.Errorf(errs.ErrInvalid, "url must be at most %d characters", maxWebhookURL)
	}
	if err := validateWebhookURL(ctx, p.URL, s.cfg.AllowPrivateWebhooks); err != nil {
		return nil, err
	}
	if len(p.Events) == 0 || len(p.Events) > 50 {
		return nil, errs.Errorf(errs.ErrInvalid, "events must list 1-50 of %s", strings.Join(eventTypes, ", "))
	}
	for _, e := range p.Events {
		if !slices.Contains(eventTypes, e) {
			return nil, errs.Errorf(errs.ErrInvalid, "unknown event %q; use %s", e, strings.Join(eventTypes, ", "))
		}
	}
	hook := &Webhook{URL: p.URL, Events: p.Events, Active: true, Secret: rand.Text() + rand.Text()}
	if p.Secret != nil {
		if len(*p.Secret) < 16 || len(*p.Secret) > 200 {
			return nil, errs.Errorf(errs.ErrInvalid, "secret must be 16-200 characters")
		}
		hook.Secret = *p.Secret
	}
	return hook, nil
}

// Webhooks lists the active webhooks.
func (s *Service) Webhooks(ctx context.Context, sub authz.Subject, t *tenancy.Tenant) ([]Webhook, error) {
	var hooks []Webhook
	err := s.authorized(ctx, sub, t, authz.WebhooksManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		hooks, err = activeWebhooks(ctx, tx)
		return err
	})
	return hooks, err
}

// DeleteWebhook deactivates a webhook; its deliveries not sent yet end cancelled.
func (s *Service) DeleteWebhook(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, id uuid.UUID) error {
	return s.authorized(ctx, sub, t, authz.WebhooksManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx) error {
		if err := deactivateWebhook(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, sub.MemberID, "webhook.deleted", "webhook:"+id.String(), nil)
	})
}

// deliveryStatuses are the values of the deliveries' status filter.
var deliveryStatuses = []string{StatusPending, StatusSent, StatusFailed, StatusDead, StatusCancelled}

// Deliveries lists deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p ListParams) (*page.Page[*Delivery], error) {
	if p.Status != "" && !slices.Contains(deliveryStatuses, p.Status) {
		return nil, errs.Errorf(errs.ErrInvalidInput, "status must be one of %s", strings.Join(deliveryStatuses, ", "))
	}
	before, err := newestFirst(p.Cursor)
	if err != nil {
		return nil, err
	}
	items := []*Delivery{}
	err = s.authorized(ctx, sub, t, authz.DeliveriesManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx) error {
		items, err = listDeliveries(ctx, tx, p.Status, before, p.Limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, p.Limit, func(last *Delivery) any { return position{At: last.CreatedAt, ID: last.ID} })
	return &pg, nil
}

// RetryDelivery starts a new round of attempts for a delivery that is not sent.
func (s *Service) RetryDelivery(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, id uuid.UUID) error {
	var p pendingDelivery
	err := s.authorized(ctx, sub, t, authz.DeliveriesManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx) error {
		d, err := getDelivery(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if d.Status == StatusSent {
			return errs.Errorf(errs.ErrConflict, "delivery was already sent")
		}
		p = pendingDelivery{ID: d.ID, Round: d.round + 1}
		if err := startRound(ctx, tx, p); err != nil {
			return err
		}
		return audit.Record(ctx, tx, sub.MemberID, "delivery.retried", "delivery:"+d.ID.String(), map[string]any{"round": p.Round})
	})
	if err != nil {
		return err
	}
	// Should this fail after the commit, the reconciliation schedules it.
	return s.schedule(ctx, t, []pendingDelivery{p})
}
