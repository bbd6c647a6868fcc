package reports

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves the reports routes.
type Handler struct{ svc *Service }

// NewHandler builds the reports HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated reports routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/reports/summary", h.summary).Methods(http.MethodGet)
	r.HandleFunc("/reports/exports", h.requestExport).Methods(http.MethodPost)
	r.HandleFunc("/reports/exports/{id}", h.getExport).Methods(http.MethodGet)
}

func who(r *http.Request) (authz.Subject, *tenancy.Tenant) {
	s, _ := authz.SubjectFrom(r.Context())
	return s, tenancy.FromContext(r.Context())
}

func (h *Handler) summary(w http.ResponseWriter, r *http.Request) {
	sub, t := who(r)
	sum, err := h.svc.Summarize(r.Context(), sub, t, r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, sum)
}

func (h *Handler) requestExport(w http.ResponseWriter, r *http.Request) {
	sub, t := who(r)
	id, err := h.svc.RequestExport(r.Context(), sub, t)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+id.String())
	respond.JSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "pending"})
}

// getExport answers the export's status while it runs, then the CSV file.
func (h *Handler) getExport(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "export not found"))
		return
	}
	sub, t := who(r)
	e, err := h.svc.GetExport(r.Context(), sub, t, id)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if e.Status != "done" || e.csv == nil {
		respond.JSON(w, http.StatusOK, e)
		return
	}
	respond.File(w, "text/csv; charset=utf-8", "tickets-"+id.String()+".csv", []byte(*e.csv))
}
