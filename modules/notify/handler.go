package notify

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves notifications, webhooks and deliveries.
type Handler struct{ svc *Service }

// NewHandler builds the notify HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/notifications", h.listNotifications).Methods(http.MethodGet)
	r.HandleFunc("/notifications/read", h.markAllRead).Methods(http.MethodPost)
	r.HandleFunc("/notifications/{id}/read", h.markRead).Methods(http.MethodPost)
	r.HandleFunc("/webhooks", h.createWebhook).Methods(http.MethodPost)
	r.HandleFunc("/webhooks", h.listWebhooks).Methods(http.MethodGet)
	r.HandleFunc("/webhooks/{id}", h.deleteWebhook).Methods(http.MethodDelete)
	r.HandleFunc("/deliveries", h.listDeliveries).Methods(http.MethodGet)
	r.HandleFunc("/deliveries/{id}/retry", h.retryDelivery).Methods(http.MethodPost)
}

func subject(r *http.Request) (authz.Subject, *tenancy.Tenant) {
	s, _ := authz.SubjectFrom(r.Context())
	return s, tenancy.FromContext(r.Context())
}

// run checks the action, then runs fn in the tenant's transaction, answering errors.
func (h *Handler) run(w http.ResponseWriter, r *http.Request, action, resource string, fn func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error) bool {
	sub, t := subject(r)
	if err := h.svc.authz.Check(r.Context(), sub, authz.Request{Action: action, Resource: resource}); err != nil {
		respond.Error(w, r, err)
		return false
	}
	if err := h.svc.reg.Tx(r.Context(), t, func(ctx context.Context, tx tenancy.Tx) error { return fn(ctx, tx, sub) }); err != nil {
		respond.Error(w, r, err)
		return false
	}
	return true
}

// position is where a newest-first page continues: before (created_at, id).
type position struct {
	At time.Time `json:"a"`
	ID uuid.UUID `json:"i"`
}

// newestFirst reads the ?cursor= of a newest-first list; without one the
// page starts after everything that exists.
func newestFirst(r *http.Request) (position, error) {
	var p position
	if err := page.DecodeCursor(r.URL.Query().Get("cursor"), &p); err != nil {
		return p, err
	}
	if p.At.IsZero() {
		p.At = time.Now().Add(time.Hour)
	}
	return p, nil
}

func pathID(r *http.Request, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		return uuid.Nil, errs.Errorf(errs.ErrNotFound, "%s not found", what)
	}
	return id, nil
}

func (h *Handler) listNotifications(w http.ResponseWriter, r *http.Request) {
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	before, err := newestFirst(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	unread := r.URL.Query().Get("unread") == "true"
	pg := page.Page[Notification]{Items: []Notification{}}
	ok := h.run(w, r, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		rows, err := tx.Query(ctx, `SELECT id, type, ticket_number, title, summary, created_at, read_at FROM notifications
			WHERE member_id = $1 AND (NOT $2 OR read_at IS NULL) AND (created_at, id) < ($3, $4)
			ORDER BY created_at DESC, id DESC LIMIT $5`, sub.MemberID, unread, before.At, before.ID, limit+1)
		if err != nil {
			return fmt.Errorf("list notifications: %w", err)
		}
		pg.Items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Notification, error) {
			var n Notification
			return n, row.Scan(&n.ID, &n.Type, &n.TicketNumber, &n.Title, &n.Summary, &n.CreatedAt, &n.ReadAt)
		})
		return err
	})
	if !ok {
		return
	}
	respond.JSON(w, http.StatusOK, page.New(pg.Items, limit, func(last Notification) any {
		return position{At: last.CreatedAt, ID: last.ID}
	}))
}

func (h *Handler) markRead(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "notification")
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	ok := h.run(w, r, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		tag, err := tx.Exec(ctx, `UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND member_id = $2`, id, sub.MemberID)
		if err != nil {
			return fmt.Errorf("mark notification read: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errs.Errorf(errs.ErrNotFound, "notification not found")
		}
		return nil
	})
	if ok {
		respond.NoContent(w)
	}
}

func (h *Handler) markAllRead(w http.ResponseWriter, r *http.Request) {
	ok := h.run(w, r, authz.NotificationsRead, authz.ResourceTenant, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		_, err := tx.Exec(ctx, `UPDATE notifications SET read_at = now() WHERE member_id = $1 AND read_at IS NULL`, sub.MemberID)
		return err
	})
	if ok {
		respond.NoContent(w)
	}
}

// eventTypes are the event names webhooks may subscribe to.
var eventTypes = []string{"*", "ticket.created", "ticket.status_changed", "ticket.assigned", "ticket.priority_changed",
	"ticket.commented", "ticket.tags_changed", "ticket.title_changed", "ticket.deleted"}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) {
	var p struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
		Secret *string  `json:"secret"`
	}
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	sub, _ := subject(r)
	if err := h.svc.authz.Check(r.Context(), sub, authz.Request{Action: authz.WebhooksManage, Resource: authz.ResourceNotify}); err != nil {
		respond.Error(w, r, err)
		return
	}
	if err := validateWebhookURL(r.Context(), p.URL, h.svc.cfg.AllowPrivateWebhooks); err != nil {
		respond.Error(w, r, err)
		return
	}
	if len(p.Events) == 0 || len(p.Events) > 50 {
		respond.Error(w, r, errs.Errorf(errs.ErrInvalid, "events must list 1-50 of %s", strings.Join(eventTypes, ", ")))
		return
	}
	for _, e := range p.Events {
		if !slices.Contains(eventTypes, e) {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalid, "unknown event %q; use %s", e, strings.Join(eventTypes, ", ")))
			return
		}
	}
	hook := Webhook{URL: p.URL, Events: p.Events, Active: true, Secret: rand.Text() + rand.Text()}
	if p.Secret != nil {
		if len(*p.Secret) < 16 || len(*p.Secret) > 200 {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalid, "secret must be 16-200 characters"))
			return
		}
		hook.Secret = *p.Secret
	}
	ok := h.run(w, r, authz.WebhooksManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		err := tx.QueryRow(ctx, `INSERT INTO webhooks (url, events, secret, created_by) VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
			hook.URL, hook.Events, hook.Secret, sub.MemberID).Scan(&hook.ID, &hook.CreatedAt)
		if err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		return audit.Record(ctx, tx, sub.MemberID, "webhook.created", "webhook:"+hook.ID.String(), map[string]any{"url": hook.URL, "events": hook.Events})
	})
	if ok {
		respond.JSON(w, http.StatusCreated, hook)
	}
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) {
	var hooks []Webhook
	ok := h.run(w, r, authz.WebhooksManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx, _ authz.Subject) error {
		var err error
		hooks, err = activeWebhooks(ctx, tx)
		return err
	})
	if ok {
		respond.JSON(w, http.StatusOK, page.Page[Webhook]{Items: hooks})
	}
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "webhook")
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	ok := h.run(w, r, authz.WebhooksManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		tag, err := tx.Exec(ctx, `UPDATE webhooks SET active = false WHERE id = $1 AND active`, id)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errs.Errorf(errs.ErrNotFound, "webhook not found")
		}
		return audit.Record(ctx, tx, sub.MemberID, "webhook.deleted", "webhook:"+id.String(), nil)
	})
	if ok {
		respond.NoContent(w)
	}
}

func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains([]string{StatusPending, StatusSent, StatusFailed, StatusDead, StatusCancelled}, status) {
		respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "status must be pending, sent, failed, dead or cancelled"))
		return
	}
	before, err := newestFirst(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	pg := page.Page[*Delivery]{Items: []*Delivery{}}
	ok := h.run(w, r, authz.DeliveriesManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx, _ authz.Subject) error {
		rows, err := tx.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
			WHERE ($1 = '' OR status = $1) AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`,
			status, before.At, before.ID, limit+1)
		if err != nil {
			return fmt.Errorf("list deliveries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			pg.Items = append(pg.Items, d)
		}
		return rows.Err()
	})
	if !ok {
		return
	}
	respond.JSON(w, http.StatusOK, page.New(pg.Items, limit, func(last *Delivery) any {
		return position{At: last.CreatedAt, ID: last.ID}
	}))
}

// retryDelivery starts a new round of attempts for a delivery that is not sent.
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "delivery")
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	var p pendingDelivery
	ok := h.run(w, r, authz.DeliveriesManage, authz.ResourceNotify, func(ctx context.Context, tx tenancy.Tx, sub authz.Subject) error {
		d, err := getDelivery(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if d.Status == StatusSent {
			return errs.Errorf(errs.ErrConflict, "delivery was already sent")
		}
		p = pendingDelivery{ID: d.ID, Round: d.round + 1}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET status = 'pending', round = $2, attempts = 0, next_attempt_at = now(),
			updated_at = now() WHERE id = $1`, d.ID, p.Round); err != nil {
			return fmt.Errorf("retry delivery: %w", err)
		}
		return audit.Record(ctx, tx, sub.MemberID, "delivery.retried", "delivery:"+d.ID.String(), map[string]any{"round": p.Round})
	})
	if !ok {
		return
	}
	_, t := subject(r)
	if err := h.svc.schedule(r.Context(), t, []pendingDelivery{p}); err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusAccepted, map[string]any{"id": id, "status": StatusPending})
}
