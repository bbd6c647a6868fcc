package notify

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves notifications, webhooks and deliveries: it reads requests
// and writes answers; the Service authorizes and does the work.
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

func pathID(r *http.Request, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		return uuid.Nil, errs.Errorf(errs.ErrNotFound, "%s not found", what)
	}
	return id, nil
}

// listParams reads ?limit= and ?cursor=.
func listParams(r *http.Request) (ListParams, error) {
	limit, err := respond.Limit(r)
	return ListParams{Limit: limit, Cursor: r.URL.Query().Get("cursor")}, err
}

func (h *Handler) listNotifications(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	p.UnreadOnly = r.URL.Query().Get("unread") == "true"
	sub, t := subject(r)
	pg, err := h.svc.Notifications(r.Context(), sub, t, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, pg)
}

func (h *Handler) markRead(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "notification")
	if err == nil {
		sub, t := subject(r)
		err = h.svc.MarkRead(r.Context(), sub, t, id)
	}
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.NoContent(w)
}

func (h *Handler) markAllRead(w http.ResponseWriter, r *http.Request) {
	sub, t := subject(r)
	if err := h.svc.MarkAllRead(r.Context(), sub, t); err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.NoContent(w)
}

func (h *Handler) createWebhook(w http.ResponseWriter, r *http.Request) {
	var p WebhookParams
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	sub, t := subject(r)
	hook, err := h.svc.CreateWebhook(r.Context(), sub, t, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, hook)
}

func (h *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) {
	sub, t := subject(r)
	hooks, err := h.svc.Webhooks(r.Context(), sub, t)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page.Page[Webhook]{Items: hooks})
}

func (h *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "webhook")
	if err == nil {
		sub, t := subject(r)
		err = h.svc.DeleteWebhook(r.Context(), sub, t, id)
	}
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.NoContent(w)
}

func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	p.Status = r.URL.Query().Get("status")
	sub, t := subject(r)
	pg, err := h.svc.Deliveries(r.Context(), sub, t, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, pg)
}

// retryDelivery starts a new round of attempts for a delivery that is not sent.
func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "delivery")
	if err == nil {
		sub, t := subject(r)
		err = h.svc.RetryDelivery(r.Context(), sub, t, id)
	}
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusAccepted, map[string]any{"id": id, "status": StatusPending})
}
