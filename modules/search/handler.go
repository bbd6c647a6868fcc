package search

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves GET /search.
type Handler struct{ svc *Service }

// NewHandler builds the search HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated search route.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/search", h.search).Methods(http.MethodGet)
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	sub, _ := authz.SubjectFrom(r.Context())
	hits, err := h.svc.Search(r.Context(), sub, tenancy.FromContext(r.Context()), r.URL.Query().Get("q"), limit)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page.Page[Hit]{Items: hits})
}
