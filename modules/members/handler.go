package members

import (
	"net"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/ratelimit"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Handler serves the members part of the HTTP API.
type Handler struct {
	svc *Service
	// signups and logins are limited per client IP.
	signups *ratelimit.Limiter
	logins  *ratelimit.Limiter
}

// HandlerConfig sets the per-IP limits (requests per minute; defaults 10 and 30).
type HandlerConfig struct {
	SignupsPerMinute float64
	LoginsPerMinute  float64
}

// NewHandler builds the members HTTP handler.
func NewHandler(svc *Service, cfg HandlerConfig) *Handler {
	signups, logins := cfg.SignupsPerMinute, cfg.LoginsPerMinute
	if signups == 0 {
		signups = 10
	}
	if logins == 0 {
		logins = 30
	}
	return &Handler{
		svc:     svc,
		signups: ratelimit.New(signups, int(max(signups/2, 1)), 100_000),
		logins:  ratelimit.New(logins, int(max(logins/3, 1)), 100_000),
	}
}

// GlobalRoutes mounts routes that are not under a tenant (signup).
func (h *Handler) GlobalRoutes(r *mux.Router) {
	r.HandleFunc("/api/v1/signup", h.signup).Methods(http.MethodPost)
}

// PublicRoutes mounts tenant routes that need no token (login).
func (h *Handler) PublicRoutes(r *mux.Router) {
	r.HandleFunc("/sessions", h.login).Methods(http.MethodPost)
}

// Routes mounts the authenticated tenant routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/me", h.me).Methods(http.MethodGet)
	r.HandleFunc("/members", h.list).Methods(http.MethodGet)
	r.HandleFunc("/members", h.create).Methods(http.MethodPost)
	r.HandleFunc("/members/{id}", h.update).Methods(http.MethodPatch)
	r.HandleFunc("/tokens", h.createToken).Methods(http.MethodPost)
}

// Authenticate is middleware that requires a valid bearer token for the
// routed tenant and puts the authz.Subject in the context.
func (h *Handler) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="patchdesk"`)
			respond.Error(w, r, errs.Errorf(errs.ErrUnauthenticated, "missing bearer token"))
			return
		}
		sub, err := h.svc.Authenticate(r.Context(), tenancy.FromContext(r.Context()), strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="patchdesk", error="invalid_token"`)
			respond.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(authz.WithSubject(r.Context(), sub)))
	})
}

// ClientIP is the address of the peer, without port.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func limited(w http.ResponseWriter, r *http.Request, lim *ratelimit.Limiter, key string) bool {
	ok, retry := lim.Allow(key)
	if !ok {
		respond.Error(w, r, &errs.Problem{Kind: errs.ErrRateLimited, Detail: "too many attempts; slow down", RetryAfter: retry})
	}
	return !ok
}

type tenantJSON struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
	Tier string `json:"tier"`
}

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) {
	if limited(w, r, h.signups, ClientIP(r)) {
		return
	}
	var p SignupParams
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	res, err := h.svc.Signup(r.Context(), p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, map[string]any{
		"tenant": tenantJSON{Slug: res.Tenant.Slug, Name: res.Tenant.Name, Tier: res.Tenant.Tier},
		"token":  res.Token,
	})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	t := tenancy.FromContext(r.Context())
	if limited(w, r, h.logins, t.Slug+"|"+ClientIP(r)) {
		return
	}
	var p struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	token, err := h.svc.Login(r.Context(), t, p.Email, p.Password)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, map[string]string{"token": token})
}

// subject returns the authenticated subject; Authenticate guarantees it.
func subject(r *http.Request) authz.Subject {
	s, _ := authz.SubjectFrom(r.Context())
	return s
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) {
	m, err := h.svc.Me(r.Context(), subject(r), tenancy.FromContext(r.Context()))
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, m)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	page, err := h.svc.ListMembers(r.Context(), subject(r), tenancy.FromContext(r.Context()), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	var p CreateMemberParams
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	m, err := h.svc.CreateMember(r.Context(), subject(r), tenancy.FromContext(r.Context()), p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, m)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(mux.Vars(r)["id"])
	if err != nil {
		respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "member not found"))
		return
	}
	var p UpdateMemberParams
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	if p.IfMatch, err = respond.IfMatch(r); err != nil {
		respond.Error(w, r, err)
		return
	}
	m, err := h.svc.UpdateMember(r.Context(), subject(r), tenancy.FromContext(r.Context()), id, p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, m)
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Name string `json:"name"`
	}
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	id, token, err := h.svc.CreateToken(r.Context(), subject(r), tenancy.FromContext(r.Context()), p.Name)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, map[string]any{"id": id, "token": token})
}
