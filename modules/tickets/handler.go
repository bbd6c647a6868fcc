package tickets

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves the tickets part of the HTTP API.
type Handler struct{ svc *Service }

// NewHandler builds the tickets HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated ticket routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/tickets", h.create).Methods(http.MethodPost)
	r.HandleFunc("/tickets", h.list).Methods(http.MethodGet)
	r.HandleFunc("/tickets/{number}", h.get).Methods(http.MethodGet)
	r.HandleFunc("/tickets/{number}", h.update).Methods(http.MethodPatch)
	r.HandleFunc("/tickets/{number}", h.delete).Methods(http.MethodDelete)
	r.HandleFunc("/tickets/{number}/comments", h.addComment).Methods(http.MethodPost)
	r.HandleFunc("/tickets/{number}/comments", h.listComments).Methods(http.MethodGet)
	r.HandleFunc("/tickets/{number}/events", h.listEvents).Methods(http.MethodGet)
}

// request is what every ticket handler needs: who, which tenant, which ticket.
type request struct {
	sub    authz.Subject
	tenant *tenancy.Tenant
	number int64
}

func parse(r *http.Request) (request, error) {
	sub, _ := authz.SubjectFrom(r.Context())
	req := request{sub: sub, tenant: tenancy.FromContext(r.Context())}
	if s, ok := mux.Vars(r)["number"]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return req, errTicketNotFound
		}
		req.number = n
	}
	return req, nil
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	req, _ := parse(r)
	var p CreateParams
	if err := respond.Decode(w, r, maxRequest, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	t, err := h.svc.Create(r.Context(), req.sub, req.tenant, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+strconv.FormatInt(t.Number, 10))
	respond.JSON(w, http.StatusCreated, t)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	req, _ := parse(r)
	q := r.URL.Query()
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	p := ListParams{Status: q.Get("status"), Priority: q.Get("priority"), Tag: q.Get("tag"), Cursor: q.Get("cursor"), Limit: limit}
	if a := q.Get("assignee_id"); a != "" {
		if p.AssigneeID, err = uuid.Parse(a); err != nil {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "assignee_id must be a UUID"))
			return
		}
	}
	page, err := h.svc.List(r.Context(), req.sub, req.tenant, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	t, err := h.svc.Get(r.Context(), req.sub, req.tenant, req.number)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, t)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	var p UpdateParams
	if err := respond.Decode(w, r, maxRequest, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	if p.IfMatch, err = respond.IfMatch(r); err != nil {
		respond.Error(w, r, err)
		return
	}
	t, err := h.svc.Update(r.Context(), req.sub, req.tenant, req.number, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, t)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	if err == nil {
		err = h.svc.Delete(r.Context(), req.sub, req.tenant, req.number)
	}
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.NoContent(w)
}

func (h *Handler) addComment(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	var p CommentParams
	if err := respond.Decode(w, r, maxRequest, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	c, err := h.svc.AddComment(r.Context(), req.sub, req.tenant, req.number, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, c)
}

func (h *Handler) listComments(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	limit, lerr := respond.Limit(r)
	if err = errs.FirstError(err, lerr); err != nil {
		respond.Error(w, r, err)
		return
	}
	page, err := h.svc.ListComments(r.Context(), req.sub, req.tenant, req.number, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page)
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) {
	req, err := parse(r)
	limit, lerr := respond.Limit(r)
	if err = errs.FirstError(err, lerr); err != nil {
		respond.Error(w, r, err)
		return
	}
	page, err := h.svc.ListEvents(r.Context(), req.sub, req.tenant, req.number, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page)
}
