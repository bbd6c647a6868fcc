// Package members owns the people of a tenant: signup of a new tenant with its
// first owner, members and roles, login sessions and API tokens, and the
// authentication middleware that turns a bearer token into an authz.Subject.
package members

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
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

// Config configures the members service.
type Config struct {
	// SessionTTL is how long a login session token is valid (default 14 days).
	SessionTTL time.Duration
	// Argon sets the password hashing cost (default DefaultArgon).
	Argon ArgonParams
}

// Provisioner creates tenants; *tenancy.Registry implements it.
type Provisioner interface {
	Provision(ctx context.Context, p tenancy.ProvisionParams) (*tenancy.Tenant, error)
}

// Service implements signup, sessions, members and tokens.
type Service struct {
	cfg   Config
	db    tenancy.TxRunner
	prov  Provisioner
	authz *authz.Authorizer
	// dummyHash makes logins for unknown emails cost as much as real ones.
	dummyHash string
}

// NewService builds the members service.
func NewService(cfg Config, db tenancy.TxRunner, prov Provisioner, az *authz.Authorizer) (*Service, error) {
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, 14*24*time.Hour)
	if cfg.Argon == (ArgonParams{}) {
		cfg.Argon = DefaultArgon
	}
	if db == nil || prov == nil || az == nil {
		return nil, errors.New("members: database, provisioner and authorizer are required")
	}
	dummy, err := hashPassword("dummy password for timing", cfg.Argon)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return &Service{cfg: cfg, db: db, prov: prov, authz: az, dummyHash: dummy}, nil
}

var (
	slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$`)
	// reservedSlugs would collide with hostnames, paths or operator words.
	reservedSlugs = []string{
		"admin", "api", "app", "assets", "auth", "billing", "blog", "cdn", "control", "dashboard", "docs",
		"ftp", "help", "imap", "login", "mail", "metrics", "patchdesk", "pop", "portal", "public", "root",
		"signup", "smtp", "static", "status", "support", "system", "www",
	}
)

// ValidateSlug checks the signup rules for a tenant slug: 3–40 characters of
// [a-z0-9-], starting and ending with a letter or digit, not reserved.
func ValidateSlug(slug string) error {
	if !slugPattern.MatchString(slug) {
		return errs.Errorf(errs.ErrInvalid, "slug must be 3-40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
	if slices.Contains(reservedSlugs, slug) {
		return errs.Errorf(errs.ErrInvalid, "slug %q is reserved", slug)
	}
	return nil
}

func validateEmail(email string) error {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return errs.Errorf(errs.ErrInvalid, "email %q is not a valid address", email)
	}
	return nil
}

func validateName(field, name string) error {
	n := utf8.RuneCountInString(strings.TrimSpace(name))
	if n < 1 || n > 200 {
		return errs.Errorf(errs.ErrInvalid, "%s must be 1-200 characters", field)
	}
	return nil
}

func validatePassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < 10 || n > 200 {
		return errs.Errorf(errs.ErrInvalid, "password must be 10-200 characters")
	}
	return nil
}

// SignupParams is the body of POST /api/v1/signup.
type SignupParams struct {
	Slug       string `json:"slug"`
	Name       string `json:"name"`
	AdminEmail string `json:"admin_email"`
	AdminName  string `json:"admin_name"`
	Password   string `json:"password"`
	// DatabaseID places the tenant in a registered (dedicated) database;
	// operators only, never from the public API.
	DatabaseID string `json:"-"`
}

// SignupResult is the answer to a signup: the tenant and an owner session token.
type SignupResult struct {
	Tenant *tenancy.Tenant
	Owner  *Member
	Token  string
}

// Signup provisions a tenant with its first owner and a session for them.
func (s *Service) Signup(ctx context.Context, p SignupParams) (*SignupResult, error) {
	err := errs.FirstError(ValidateSlug(p.Slug), validateName("name", p.Name), validateEmail(p.AdminEmail),
		validateName("admin_name", p.AdminName), validatePassword(p.Password))
	if err != nil {
		return nil, err
	}
	hash, err := hashPassword(p.Password, s.cfg.Argon)
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	res := &SignupResult{}
	t, err := s.prov.Provision(ctx, tenancy.ProvisionParams{
		Slug: p.Slug, Name: strings.TrimSpace(p.Name), DatabaseID: p.DatabaseID,
		Init: func(ctx context.Context, tx tenancy.Tx) error {
			owner, err := insertMember(ctx, tx, insertParams{Email: p.AdminEmail, Name: strings.TrimSpace(p.AdminName),
				Role: authz.RoleOwner, PasswordHash: hash})
			if err != nil {
				return err
			}
			res.Owner = owner
			res.Token, err = s.issueSession(ctx, tx, owner.ID)
			return err
		},
	})
	if errors.Is(err, tenancy.ErrSlugTaken) {
		return nil, errs.Errorf(errs.ErrConflict, "slug %q is taken", p.Slug)
	}
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	res.Tenant = t
	return res, nil
}

func (s *Service) issueSession(ctx context.Context, tx tenancy.Tx, memberID uuid.UUID) (string, error) {
	token, hash := newToken(tx.Tenant().ID)
	expires := time.Now().Add(s.cfg.SessionTTL)
	if _, err := insertToken(ctx, tx, memberID, "session", "", hash, &expires); err != nil {
		return "", err
	}
	return token, nil
}

// Login checks credentials and returns a new session token. Unknown emails,
// wrong passwords, inactive members and members without a password all give
// the same 401, after the same hashing work.
func (s *Service) Login(ctx context.Context, t *tenancy.Tenant, email, password string) (string, error) {
	var token string
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		c, err := memberByEmail(ctx, tx, email)
		if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return err
		}
		hash := s.dummyHash
		if c != nil && c.PasswordHash != nil {
			hash = *c.PasswordHash
		}
		ok, verr := verifyPassword(password, hash)
		if verr != nil {
			return fmt.Errorf("login: %w", verr)
		}
		if c == nil || c.PasswordHash == nil || !ok || !c.Member.Active {
			return errs.Errorf(errs.ErrUnauthenticated, "invalid email or password")
		}
		token, err = s.issueSession(ctx, tx, c.Member.ID)
		return err
	})
	return token, err
}

// Authenticate resolves a bearer token to the member behind it, within the
// routed tenant only: a token minted for another tenant is refused before any
// query runs.
func (s *Service) Authenticate(ctx context.Context, t *tenancy.Tenant, token string) (authz.Subject, error) {
	tenantID, hash, ok := parseToken(token)
	if !ok || tenantID != t.ID {
		return authz.Subject{}, errs.Errorf(errs.ErrUnauthenticated, "invalid or expired token")
	}
	var sub authz.Subject
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		sub, err = subjectByTokenHash(ctx, tx, hash)
		return err
	})
	return sub, err
}

// CreateMemberParams is the body of POST /members.
type CreateMemberParams struct {
	Email    string  `json:"email"`
	Name     string  `json:"name"`
	Role     string  `json:"role"`
	Password *string `json:"password"`
}

// CreateMember adds a member (owner/admin; only owners add owners).
func (s *Service) CreateMember(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, p CreateMemberParams) (*Member, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersManage, Resource: authz.ResourceMembers}); err != nil {
		return nil, err
	}
	if !authz.ValidRole(p.Role) {
		return nil, errs.Errorf(errs.ErrInvalid, "role must be one of %s", strings.Join(authz.Roles, ", "))
	}
	if p.Role == authz.RoleOwner {
		if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersManageOwners, Resource: authz.ResourceMembers}); err != nil {
			return nil, err
		}
	}
	if err := errs.FirstError(validateEmail(p.Email), validateName("name", p.Name)); err != nil {
		return nil, err
	}
	var hash string
	if p.Password != nil {
		if err := validatePassword(*p.Password); err != nil {
			return nil, err
		}
		var err error
		if hash, err = hashPassword(*p.Password, s.cfg.Argon); err != nil {
			return nil, fmt.Errorf("create member: %w", err)
		}
	}
	var m *Member
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		m, err = insertMember(ctx, tx, insertParams{Email: p.Email, Name: strings.TrimSpace(p.Name), Role: p.Role, PasswordHash: hash})
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, sub.MemberID, "member.created", "member:"+m.ID.String(), map[string]any{"email": m.Email, "role": m.Role})
	})
	return m, err
}

// UpdateMemberParams is the body of PATCH /members/{id}.
type UpdateMemberParams struct {
	Role   *string `json:"role"`
	Active *bool   `json:"active"`
	// IfMatch, when set, must equal the member's current version.
	IfMatch *int `json:"-"`
}

// UpdateMember changes a member's role or active flag, refusing to leave the
// tenant without an active owner.
func (s *Service) UpdateMember(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, id uuid.UUID, p UpdateMemberParams) (*Member, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersManage, Resource: authz.ResourceMembers}); err != nil {
		return nil, err
	}
	if p.Role != nil && !authz.ValidRole(*p.Role) {
		return nil, errs.Errorf(errs.ErrInvalid, "role must be one of %s", strings.Join(authz.Roles, ", "))
	}
	var m *Member
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		cur, err := getMember(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if p.IfMatch != nil && *p.IfMatch != cur.Version {
			return errs.Errorf(errs.ErrConflict, "member version is %d, not %d", cur.Version, *p.IfMatch)
		}
		role, active := cmp.Or(deref(p.Role), cur.Role), cur.Active
		if p.Active != nil {
			active = *p.Active
		}
		if cur.Role == authz.RoleOwner || role == authz.RoleOwner {
			if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersManageOwners, Resource: authz.ResourceMembers}); err != nil {
				return err
			}
		}
		losingOwner := cur.Role == authz.RoleOwner && cur.Active && (role != authz.RoleOwner || !active)
		if losingOwner {
			n, err := otherActiveOwners(ctx, tx, cur.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return errs.Errorf(errs.ErrInvalid, "the last active owner cannot be demoted or deactivated")
			}
		}
		if m, err = updateMember(ctx, tx, id, role, active); err != nil {
			return err
		}
		return audit.Record(ctx, tx, sub.MemberID, "member.updated", "member:"+id.String(), map[string]any{
			"before": map[string]any{"role": cur.Role, "active": cur.Active}, "after": map[string]any{"role": role, "active": active},
		})
	})
	return m, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ListMembers pages the member directory (staff only).
func (s *Service) ListMembers(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, cursor string, limit int) (*page.Page[*Member], error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MembersList, Resource: authz.ResourceMembers}); err != nil {
		return nil, err
	}
	var after memberCursor
	if err := page.DecodeCursor(cursor, &after); err != nil {
		return nil, err
	}
	var items []*Member
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		items, err = listMembers(ctx, tx, after.Email, after.ID, limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, limit, func(last *Member) any { return memberCursor{Email: last.Email, ID: last.ID} })
	return &pg, nil
}

type memberCursor struct {
	Email string    `json:"e"`
	ID    uuid.UUID `json:"i"`
}

// Me returns the caller's own member record.
func (s *Service) Me(ctx context.Context, sub authz.Subject, t *tenancy.Tenant) (*Member, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.MeRead, Resource: authz.ResourceTenant}); err != nil {
		return nil, err
	}
	var m *Member
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		m, err = getMember(ctx, tx, sub.MemberID, false)
		return err
	})
	return m, err
}

// CreateToken mints an API token for the caller, acting with the caller's role.
func (s *Service) CreateToken(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, name string) (uuid.UUID, string, error) {
	if err := s.authz.Check(ctx, sub, authz.Request{Action: authz.TokensCreate, Resource: authz.ResourceTenant}); err != nil {
		return uuid.Nil, "", err
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 {
		return uuid.Nil, "", errs.Errorf(errs.ErrInvalid, "name must be 1-100 characters")
	}
	token, hash := newToken(t.ID)
	var id uuid.UUID
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		id, err = insertToken(ctx, tx, sub.MemberID, "api", name, hash, nil)
		return err
	})
	return id, token, err
}
