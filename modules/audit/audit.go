// Package audit keeps the tenant's append-only log of privileged actions
// (deletes, reopens, role changes, exports) and serves it to owners and admins.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Entry is one audit record.
type Entry struct {
	ID        int64           `json:"id"`
	ActorID   *uuid.UUID      `json:"actor_id"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// Record appends an entry within the caller's transaction, so the audit
// record commits or rolls back with the action itself.
func Record(ctx context.Context, tx tenancy.Tx, actor uuid.UUID, action, target string, data any) error {
	if data == nil {
		data = map[string]any{}
	}
	var actorID *uuid.UUID
	if actor != uuid.Nil {
		actorID = &actor
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor_id, action, target, data) VALUES ($1, $2, $3, $4)`,
		actorID, action, target, data); err != nil {
		return fmt.Errorf("record audit %s: %w", action, err)
	}
	return nil
}

// Service reads the audit log.
type Service struct {
	db    tenancy.TxRunner
	authz *authz.Authorizer
}

// NewService builds the audit service.
func NewService(db tenancy.TxRunner, az *authz.Authorizer) *Service {
	return &Service{db: db, authz: az}
}

// List pages the audit log newest first, optionally for one target.
func (s *Service) List(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, target, cursor string, limit int) (*page.Page[Entry], error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.AuditRead, Resource: authz.ResourceAudit}); err != nil {
		return nil, err
	}
	var before struct {
		ID int64 `json:"i"`
	}
	if err := page.DecodeCursor(cursor, &before); err != nil {
		return nil, err
	}
	var items []Entry
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, actor_id, action, target, data, created_at FROM audit_log
			WHERE ($1 = '' OR target = $1) AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, target, before.ID, limit+1)
		if err != nil {
			return fmt.Errorf("list audit: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e Entry
			if err := rows.Scan(&e.ID, &e.ActorID, &e.Action, &e.Target, &e.Data, &e.CreatedAt); err != nil {
				return fmt.Errorf("list audit: %w", err)
			}
			items = append(items, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, limit, func(last Entry) any { return map[string]int64{"i": last.ID} })
	return &pg, nil
}

// Handler serves GET /audit.
type Handler struct{ svc *Service }

// NewHandler builds the audit HTTP handler.
func NewHandler(svc *Service) *Handler { return &Handler{svc: svc} }

// Routes mounts the authenticated audit routes.
func (h *Handler) Routes(r *mux.Router) {
	r.HandleFunc("/audit", h.list).Methods(http.MethodGet)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	limit, err := respond.Limit(r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	sub, _ := authz.SubjectFrom(r.Context())
	page, err := h.svc.List(r.Context(), sub, tenancy.FromContext(r.Context()), r.URL.Query().Get("target"), r.URL.Query().Get("cursor"), limit)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, page)
}
