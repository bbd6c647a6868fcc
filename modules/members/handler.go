package members

import (
	"cmp"
	"errors"
	"net"
	"net/http"

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
	// signups are limited per client IP; logins per tenant and client IP
	// and, across tenants, per client IP.
	signups, logins, loginsIP *ratelimit.Limiter
	// authFailures counts, per client IP, well-formed tokens that matched
	// nothing: once exhausted, that IP's tokens are refused (429) before the
	// database is asked, so guessing secrets costs no transactions.
	authFailures *ratelimit.Limiter
}

// HandlerConfig sets the per-IP limits, in events per minute.
type HandlerConfig struct {
	// SignupsPerMinute limits signups per client IP (default 10).
	SignupsPerMinute float64
	// LoginsPerMinute limits logins per tenant and client IP (default 30).
	LoginsPerMinute float64
	// LoginsPerIPPerMinute limits logins per client IP over all tenants
	// (default twice LoginsPerMinute).
	LoginsPerIPPerMinute float64
	// AuthFailuresPerMinute limits failed token authentications per client
	// IP (default 60, burst a third of it).
	AuthFailuresPerMinute float64
}

// NewHandler builds the members HTTP handler.
func NewHandler(svc *Service, cfg HandlerConfig) *Handler {
	signups := cmp.Or(cfg.SignupsPerMinute, 10)
	logins := cmp.Or(cfg.LoginsPerMinute, 30)
	loginsIP := cmp.Or(cfg.LoginsPerIPPerMinute, 2*logins)
	failures := cmp.Or(cfg.AuthFailuresPerMinute, 60)
	limiter := func(perMinute, burstShare float64) *ratelimit.Limiter {
		return ratelimit.New(perMinute, int(max(perMinute/burstShare, 1)), 100_000)
	}
	return &Handler{
		svc:          svc,
		signups:      limiter(signups, 2),
		logins:       limiter(logins, 3),
		loginsIP:     limiter(loginsIP, 3),
		authFailures: limiter(failures, 3),
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
	r.HandleFunc("/tokens", h.listCredentials(kindAPI)).Methods(http.MethodGet)
	r.HandleFunc("/tokens/{id}", h.revoke(kindAPI)).Methods(http.MethodDelete)
	r.HandleFunc("/sessions", h.listCredentials(kindSession)).Methods(http.MethodGet)
	r.HandleFunc("/sessions/current", h.logout).Methods(http.MethodDelete)
	r.HandleFunc("/sessions/{id}", h.revoke(kindSession)).Methods(http.MethodDelete)
}

// Authenticate is middleware that requires a valid bearer token for the
// routed tenant and puts the authz.Subject in the context.
func (h *Handler) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := respond.Bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="patchdesk"`)
			respond.Error(w, r, errs.Errorf(errs.ErrUnauthenticated, "missing bearer token"))
			return
		}
		sub, err := h.Resolve(r, token)
		if err != nil {
			if errors.Is(err, errs.ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="patchdesk", error="invalid_token"`)
			}
			respond.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(authz.WithSubject(r.Context(), sub)))
	})
}

// Resolve authenticates token (a bearer or cookie session token) for the
// request's tenant. Tokens not shaped for this tenant fail without a query;
// a client IP whose recent well-formed tokens kept failing is answered 429
// before any query, until its failure budget refills.
func (h *Handler) Resolve(r *http.Request, token string) (authz.Subject, error) {
	t := tenancy.FromContext(r.Context())
	if !TokenFor(t, token) {
		return authz.Subject{}, errs.Errorf(errs.ErrUnauthenticated, "invalid or expired token")
	}
	ip := ClientIP(r)
	if exhausted, retry := h.authFailures.Exhausted(ip); exhausted {
		return authz.Subject{}, &errs.Problem{Kind: errs.ErrRateLimited, Detail: "too many invalid tokens from this address; slow down", RetryAfter: retry}
	}
	sub, err := h.svc.Authenticate(r.Context(), t, token)
	if errors.Is(err, errs.ErrUnauthenticated) {
		h.authFailures.Allow(ip)
	}
	return sub, err
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
	ip := ClientIP(r)
	if limited(w, r, h.loginsIP, ip) || limited(w, r, h.logins, t.ID.String()+"|"+ip) {
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
	var p CreateTokenParams
	if err := respond.Decode(w, r, respond.MaxBody, &p); err != nil {
		respond.Error(w, r, err)
		return
	}
	tok, err := h.svc.CreateToken(r.Context(), subject(r), tenancy.FromContext(r.Context()), p)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, tok)
}

func (h *Handler) listCredentials(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, err := respond.Limit(r)
		if err != nil {
			respond.Error(w, r, err)
			return
		}
		p := ListCredentialsParams{Kind: kind, Cursor: q.Get("cursor"), Limit: limit}
		if m := q.Get("member_id"); m != "" {
			if p.MemberID, err = uuid.Parse(m); err != nil {
				respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "member_id must be a UUID"))
				return
			}
		}
		page, err := h.svc.ListCredentials(r.Context(), subject(r), tenancy.FromContext(r.Context()), p)
		if err != nil {
			respond.Error(w, r, err)
			return
		}
		respond.JSON(w, http.StatusOK, page)
	}
}

func (h *Handler) revoke(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(mux.Vars(r)["id"])
		if err != nil {
			respond.Error(w, r, errCredentialNotFound)
			return
		}
		if err := h.svc.RevokeCredential(r.Context(), subject(r), tenancy.FromContext(r.Context()), kind, id); err != nil {
			respond.Error(w, r, err)
			return
		}
		respond.NoContent(w)
	}
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.RevokeCurrent(r.Context(), subject(r), tenancy.FromContext(r.Context())); err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.NoContent(w)
}
