package members

import (
	"context"
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

// Kinds of credential.
const (
	kindSession = "session"
	kindAPI     = "api"
)

// Credential describes a session or API token without its secret, for the
// owner of the credential and for the workspace's owners and admins.
type Credential struct {
	ID          uuid.UUID  `json:"id"`
	Kind        string     `json:"kind"`
	MemberID    uuid.UUID  `json:"member_id"`
	MemberEmail string     `json:"member_email"`
	Name        string     `json:"name"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	// Current marks the credential the listing request itself used.
	Current bool `json:"current"`
}

// CreateTokenParams is the body of POST /tokens.
type CreateTokenParams struct {
	Name string `json:"name"`
	// ExpiresAt, when set, must be in the future; nil never expires.
	ExpiresAt *time.Time `json:"expires_at"`
}

// NewToken is a freshly minted API token: the secret is shown only here.
type NewToken struct {
	ID        uuid.UUID  `json:"id"`
	Token     string     `json:"token"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// CreateToken mints an API token for the caller, acting with the caller's role.
func (s *Service) CreateToken(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p CreateTokenParams) (*NewToken, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.TokensCreate, Resource: authz.ResourceTenant}); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(p.Name)
	if n := utf8.RuneCountInString(name); n < 1 || n > maxTokenName {
		return nil, errs.Errorf(errs.ErrInvalid, "name must be 1-%d characters", maxTokenName)
	}
	if p.ExpiresAt != nil && !p.ExpiresAt.After(time.Now()) {
		return nil, errs.Errorf(errs.ErrInvalid, "expires_at must be in the future")
	}
	token, hash := newToken(t.ID)
	out := &NewToken{Token: token, ExpiresAt: p.ExpiresAt}
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		out.ID, err = insertToken(ctx, tx, sub.MemberID, kindAPI, name, hash, p.ExpiresAt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListCredentialsParams selects the credentials of GET /sessions and GET /tokens.
type ListCredentialsParams struct {
	// Kind is "session" or "api".
	Kind string
	// MemberID restricts the list to one member; uuid.Nil means every member
	// the caller may see (owners and admins: all; others: themselves).
	MemberID uuid.UUID
	Cursor   string
	Limit    int
}

type credentialCursor struct {
	CreatedAt time.Time `json:"c"`
	ID        uuid.UUID `json:"i"`
}

// ListCredentials pages unexpired sessions or API tokens, newest first:
// one's own, or every member's for owners and admins.
func (s *Service) ListCredentials(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p ListCredentialsParams) (*page.Page[*Credential], error) {
	f := credentialFilter{Kind: p.Kind, Member: p.MemberID, Limit: p.Limit + 1}
	manageAll := s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.CredentialsManage, Resource: authz.ResourceCredentials})
	switch {
	case manageAll:
	case p.MemberID == uuid.Nil || p.MemberID == sub.MemberID:
		if err := s.checkCredentials(ctx, sub, sub.MemberID); err != nil {
			return nil, err
		}
		f.Member = sub.MemberID
	default:
		return nil, errs.Errorf(errs.ErrForbidden, "role %s may list only their own credentials", sub.Role)
	}
	if p.Cursor != "" {
		f.After = &credentialCursor{}
		if err := page.DecodeCursor(p.Cursor, f.After); err != nil {
			return nil, err
		}
	}
	var items []*Credential
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		items, err = listCredentials(ctx, tx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, c := range items {
		c.Current = c.ID == sub.TokenID
	}
	pg := page.New(items, p.Limit, func(last *Credential) any { return credentialCursor{CreatedAt: last.CreatedAt, ID: last.ID} })
	return &pg, nil
}

func (s *Service) checkCredentials(ctx context.Context, sub authz.Subject, holder uuid.UUID) error {
	return s.authz.Check(ctx, sub, authz.Request{Action: authz.CredentialsManage, Resource: authz.ResourceCredentials, Own: holder == sub.MemberID})
}

// RevokeCredential deletes a session or API token of the given kind, so it
// stops working at once, and audits it. Members revoke their own; owners and
// admins anyone's, except that only owners revoke another owner's. A
// credential the caller may not see answers 404.
func (s *Service) RevokeCredential(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, kind string, id uuid.UUID) error {
	return s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		c, holderRole, err := lockCredential(ctx, tx, id)
		if err != nil {
			return err
		}
		if c.Kind != kind {
			return errCredentialNotFound
		}
		if err := s.checkCredentials(ctx, sub, c.MemberID); err != nil {
			if c.MemberID != sub.MemberID {
				return errCredentialNotFound
			}
			return err
		}
		if holderRole == authz.RoleOwner && c.MemberID != sub.MemberID {
			if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersManageOwners, Resource: authz.ResourceMembers}); err != nil {
				return err
			}
		}
		return s.revoke(ctx, tx, sub, c)
	})
}

// RevokeCurrent revokes the credential the request authenticated with
// (logout, for a session).
func (s *Service) RevokeCurrent(ctx context.Context, sub authz.Subject, t *tenancy.Tenant) error {
	if sub.TokenID == uuid.Nil {
		return errCredentialNotFound
	}
	return s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		c, _, err := lockCredential(ctx, tx, sub.TokenID)
		if err != nil {
			return err
		}
		if err := s.checkCredentials(ctx, sub, c.MemberID); err != nil {
			return err
		}
		return s.revoke(ctx, tx, sub, c)
	})
}

func (s *Service) revoke(ctx context.Context, tx tenancy.Tx, sub authz.Subject, c *Credential) error {
	if err := deleteToken(ctx, tx, c.ID); err != nil {
		return err
	}
	action := "token.revoked"
	if c.Kind == kindSession {
		action = "session.revoked"
	}
	return audit.Record(ctx, tx, sub.MemberID, action, "member:"+c.MemberID.String(), map[string]any{
		"credential_id": c.ID, "kind": c.Kind, "name": c.Name, "own": c.MemberID == sub.MemberID, "current": c.ID == sub.TokenID,
	})
}
