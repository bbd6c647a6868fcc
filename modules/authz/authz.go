// Package authz makes every authorization decision in PatchDesk, with Ory
// Ladon policies compiled at start. Handlers ask Check once per action and
// never compare roles themselves.
package authz

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/ory/ladon"
	"github.com/ory/ladon/manager/memory"
	"github.com/patchdesk/patchdesk/modules/errs"
)

// Roles, most to least privileged.
const (
	RoleOwner      = "owner"
	RoleAdmin      = "admin"
	RoleAgent      = "agent"
	RoleLightAgent = "light_agent"
	RoleViewer     = "viewer"
	RoleCustomer   = "customer"
)

// Roles lists every role.
var Roles = []string{RoleOwner, RoleAdmin, RoleAgent, RoleLightAgent, RoleViewer, RoleCustomer}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool { return slices.Contains(Roles, role) }

// Actions.
const (
	MeRead = "me:read"
	// MembersList reads the member directory (staff only).
	MembersList = "members:list"
	// MembersManage creates members and changes their role or active flag.
	MembersManage = "members:manage"
	// MembersManageOwners grants, removes or deactivates the owner role.
	MembersManageOwners = "members:manage-owners"
	TokensCreate        = "tokens:create"
	// CredentialsManage lists and revokes sessions and API tokens: everyone
	// their own (Own), owners and admins every member's.
	CredentialsManage = "credentials:manage"

	// TicketsCreate opens a ticket.
	TicketsCreate = "tickets:create"
	// TicketsRead reads a ticket, its public comments and timeline (customers: Own only).
	TicketsRead = "tickets:read"
	// TicketsClassify sets priority and tags when opening a ticket; customers
	// may not (their tickets get the default priority and no tags).
	TicketsClassify = "tickets:classify"
	// TicketsUpdate changes title, status, priority or tags.
	TicketsUpdate = "tickets:update"
	// TicketsAssign sets or clears the assignee.
	TicketsAssign = "tickets:assign"
	// TicketsReopen moves a closed ticket back to open.
	TicketsReopen = "tickets:reopen"
	// TicketsDelete soft-deletes a ticket.
	TicketsDelete = "tickets:delete"
	// CommentsPublic writes a reply the requester sees (customers: Own only).
	CommentsPublic = "comments:public"
	// CommentsInternal writes an internal note.
	CommentsInternal = "comments:internal"
	// CommentsReadInternal sees internal notes.
	CommentsReadInternal = "comments:read-internal"
	// AuditRead reads the audit log.
	AuditRead = "audit:read"
	// TicketsAssignable marks a role that may be a ticket's assignee.
	TicketsAssignable = "tickets:be-assigned"

	// NotificationsRead reads and marks one's own in-app notifications.
	NotificationsRead = "notifications:read"
	// WebhooksManage registers, lists and removes webhooks.
	WebhooksManage = "webhooks:manage"
	// DeliveriesManage lists email and webhook deliveries and re-sends them.
	DeliveriesManage = "deliveries:manage"

	// ReportsRead reads the reports summary.
	ReportsRead = "reports:read"
	// ReportsExport exports every ticket as CSV.
	ReportsExport = "reports:export"
)

// Subject is the authenticated member behind a request.
type Subject struct {
	MemberID uuid.UUID
	// Email is in canonical form (package address): compare it with ==.
	Email string
	Name  string
	Role  string
	// TokenID and TokenKind ("session" or "api") identify the credential the
	// request authenticated with: rate limits key on the identity, not on the
	// header's spelling, and logout revokes exactly this credential.
	TokenID   uuid.UUID
	TokenKind string
}

type subjectKey struct{}

// WithSubject returns a context carrying the authenticated subject.
func WithSubject(ctx context.Context, s Subject) context.Context {
	return context.WithValue(ctx, subjectKey{}, s)
}

// SubjectFrom returns the authenticated subject, if any.
func SubjectFrom(ctx context.Context) (Subject, bool) {
	s, ok := ctx.Value(subjectKey{}).(Subject)
	return s, ok
}

// Authorizer decides requests against the compiled policy set.
type Authorizer struct {
	warden *ladon.Ladon
}

// New compiles the built-in policies.
func New(ctx context.Context) (*Authorizer, error) {
	mgr := memory.NewMemoryManager()
	for _, p := range policies() {
		if err := mgr.Create(ctx, p); err != nil {
			return nil, fmt.Errorf("load policy %s: %w", p.ID, err)
		}
	}
	return &Authorizer{warden: &ladon.Ladon{Manager: mgr, AuditLogger: &ladon.AuditLoggerNoOp{}}}, nil
}

// Request describes one decision: what the subject wants to do on which resource.
type Request struct {
	Action   string
	Resource string
	// Own tells whether the subject owns the resource: the requester of a
	// ticket, the holder of a session or API token.
	Own bool
}

// Allowed reports whether role may perform the request.
func (a *Authorizer) Allowed(ctx context.Context, role string, req Request) bool {
	err := a.warden.IsAllowed(ctx, &ladon.Request{
		Subject:  "role:" + role,
		Action:   req.Action,
		Resource: req.Resource,
		Context:  ladon.Context{"own": req.Own},
	})
	return err == nil
}

// Check returns errs.ErrForbidden unless the subject may perform the request.
func (a *Authorizer) Check(ctx context.Context, s Subject, req Request) error {
	if !a.Allowed(ctx, s.Role, req) {
		return errs.Errorf(errs.ErrForbidden, "role %s may not %s", s.Role, req.Action)
	}
	return nil
}
