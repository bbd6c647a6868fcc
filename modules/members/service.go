// Package members owns the people of a tenant: signup of a new tenant with its
// first owner, members and roles, login sessions and API tokens, and the
// authentication middleware that turns a bearer token into an authz.Subject.
package members

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/address"
	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Config configures the members service.
type Config struct {
	// SessionTTL is how long a login session stays valid without use: each
	// use moves its expiry to SessionTTL later (default 14 days).
	SessionTTL time.Duration
	// SessionMaxAge bounds a session's life however often it is used
	// (default 90 days), so a stolen session cannot be kept alive forever.
	SessionMaxAge time.Duration
	// TouchEvery is how often, at most, a use of a session or API token is
	// written back (last_used_at, sliding expiry): not on every request
	// (default 1 minute).
	TouchEvery time.Duration
	// Argon sets the password hashing cost (default DefaultArgon).
	Argon ArgonParams
	// MaxConcurrentHashes bounds password hashes running at once, each
	// holding Argon.MemoryKiB (default: the number of CPUs Go may use).
	MaxConcurrentHashes int
	// HashWait is how long a sign-in waits for a hashing slot before it is
	// answered 503 with Retry-After (default 2 s).
	HashWait time.Duration
}

// Provisioner creates tenants; *tenancy.Registry implements it.
type Provisioner interface {
	Provision(ctx context.Context, p tenancy.ProvisionParams) (*tenancy.Tenant, error)
}

// Service implements signup, sessions, members and tokens.
type Service struct {
	cfg    Config
	db     tenancy.TxRunner
	prov   Provisioner
	authz  *authz.Authorizer
	hasher *hasher
	// dummyHash makes logins for unknown emails cost as much as real ones.
	dummyHash string
}

// NewService builds the members service.
func NewService(cfg Config, db tenancy.TxRunner, prov Provisioner, az *authz.Authorizer) (*Service, error) {
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, 14*24*time.Hour)
	cfg.SessionMaxAge = cmp.Or(cfg.SessionMaxAge, 90*24*time.Hour)
	cfg.TouchEvery = cmp.Or(cfg.TouchEvery, time.Minute)
	cfg.MaxConcurrentHashes = cmp.Or(cfg.MaxConcurrentHashes, runtime.GOMAXPROCS(0))
	cfg.HashWait = cmp.Or(cfg.HashWait, 2*time.Second)
	if cfg.Argon == (ArgonParams{}) {
		cfg.Argon = DefaultArgon
	}
	if db == nil || prov == nil || az == nil {
		return nil, errors.New("members: database, provisioner and authorizer are required")
	}
	if cfg.SessionTTL < 0 || cfg.SessionMaxAge < cfg.SessionTTL || cfg.TouchEvery < 0 || cfg.MaxConcurrentHashes < 1 || cfg.HashWait < 0 {
		return nil, errors.New("members: session lifetimes, touch interval, hashing bound and wait must be positive (max age at least the idle TTL)")
	}
	dummy, err := hashPassword("dummy password for timing", cfg.Argon)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	return &Service{cfg: cfg, db: db, prov: prov, authz: az, dummyHash: dummy,
		hasher: newHasher(cfg.Argon, cfg.MaxConcurrentHashes, cfg.HashWait)}, nil
}

var (
	slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$`)
	// reservedSlugs would collide with hostnames a mail or web service
	// expects under the base domain (postmaster, mta-sts, autodiscover…),
	// with PatchDesk's own paths and hosts (healthz, metrics, inbound…), or
	// with the operator's demo tenant, or would impersonate the service.
	// Slugs shorter than 3 characters ("t", "id") are refused by the pattern
	// and listed only to say why.
	reservedSlugs = []string{
		"abuse", "admin", "administrator", "api", "app", "assets", "auth", "autoconfig", "autodiscover", "billing",
		"blog", "broadcasthost", "cdn", "control", "dashboard", "demo", "docs", "ftp", "healthz", "help",
		"hostmaster", "id", "imap", "inbound", "isatap", "localdomain", "localhost", "login", "mail", "metrics",
		"mta-sts", "mx", "no-reply", "noreply", "ns1", "ns2", "openapi", "patchdesk", "pop", "pop3", "portal",
		"postmaster", "public", "readyz", "root", "security", "signup", "smtp", "static", "status", "support",
		"system", "t", "webmail", "webmaster", "wpad", "www",
	}
)

// ValidateSlug checks the signup rules for a tenant slug: 3–40 characters of
// [a-z0-9-], starting and ending with a letter or digit, not reserved, and
// not a label DNS reserves for encodings (hyphens in the 3rd and 4th place,
// as in punycode's xn--, RFC 5891 §4.2.3.1), which would look like another
// name in a browser.
func ValidateSlug(slug string) error {
	if err := validateSlugFormat(slug); err != nil {
		return err
	}
	if slices.Contains(reservedSlugs, slug) {
		return errs.Errorf(errs.ErrInvalid, "slug %q is reserved", slug)
	}
	return nil
}

func validateSlugFormat(slug string) error {
	if !slugPattern.MatchString(slug) {
		return errs.Errorf(errs.ErrInvalid, "slug must be 3-40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
	if len(slug) >= 4 && slug[2:4] == "--" {
		return errs.Errorf(errs.ErrInvalid, "slug %q is reserved: a hyphen pair in the 3rd and 4th place marks an encoded (xn--) name", slug)
	}
	return nil
}

// Limits of member and token fields, matching the schema's CHECK constraints.
const (
	maxName      = 200
	maxTokenName = 100
)

func validateName(field, name string) error {
	n := utf8.RuneCountInString(strings.TrimSpace(name))
	if n < 1 || n > maxName {
		return errs.Errorf(errs.ErrInvalid, "%s must be 1-%d characters", field, maxName)
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
	// Operator marks a signup by an operator command (serve --demo, the
	// tenants CLI), which may use a reserved slug such as "demo"; never from
	// the public API.
	Operator bool `json:"-"`
}

// SignupResult is the answer to a signup: the tenant and an owner session token.
type SignupResult struct {
	Tenant *tenancy.Tenant
	Owner  *Member
	Token  string
}

// Signup provisions a tenant with its first owner and a session for them.
func (s *Service) Signup(ctx context.Context, p SignupParams) (*SignupResult, error) {
	slugErr := ValidateSlug(p.Slug)
	if p.Operator {
		slugErr = validateSlugFormat(p.Slug)
	}
	email, emailErr := address.Field("admin_email", p.AdminEmail)
	err := errs.FirstError(slugErr, validateName("name", p.Name), emailErr,
		validateName("admin_name", p.AdminName), validatePassword(p.Password))
	if err != nil {
		return nil, err
	}
	hash, err := s.hasher.hash(ctx, p.Password)
	if err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	res := &SignupResult{}
	t, err := s.prov.Provision(ctx, tenancy.ProvisionParams{
		Slug: p.Slug, Name: strings.TrimSpace(p.Name), DatabaseID: p.DatabaseID,
		Init: func(ctx context.Context, tx tenancy.Tx) error {
			owner, err := insertMember(ctx, tx, insertParams{Email: email, Name: strings.TrimSpace(p.AdminName),
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
	if _, err := insertToken(ctx, tx, memberID, kindSession, "", hash, &expires); err != nil {
		return "", err
	}
	return token, nil
}

// Login checks credentials and returns a new session token. Unknown emails,
// wrong passwords, inactive members and members without a password all give
// the same 401, after the same hashing work. The hash runs outside any
// transaction (it takes tens of milliseconds and must not hold a pooled
// connection) and within the service's bound on concurrent hashes.
func (s *Service) Login(ctx context.Context, t *tenancy.Tenant, email, password string) (string, error) {
	var c *credentials
	if canonical, err := address.Canonical(email); err == nil {
		err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			var err error
			c, err = memberByEmail(ctx, tx, canonical)
			if errors.Is(err, errs.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("login: %w", err)
		}
	}
	hash := s.dummyHash
	if c != nil && c.PasswordHash != nil {
		hash = *c.PasswordHash
	}
	ok, err := s.hasher.verify(ctx, password, hash)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	if c == nil || c.PasswordHash == nil || !ok || !c.Member.Active {
		return "", errs.Errorf(errs.ErrUnauthenticated, "invalid email or password")
	}
	var token string
	err = s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if err := deleteExpiredTokens(ctx, tx, c.Member.ID); err != nil {
			return err
		}
		var err error
		token, err = s.issueSession(ctx, tx, c.Member.ID)
		return err
	})
	return token, err
}

// TokenFor reports whether token is shaped like a PatchDesk token of tenant
// t: anything else is refused without a query (and costs nothing).
func TokenFor(t *tenancy.Tenant, token string) bool {
	tenantID, _, ok := parseToken(token)
	return ok && t != nil && tenantID == t.ID
}

// Authenticate resolves a bearer token to the member behind it, within the
// routed tenant only: a token minted for another tenant is refused before any
// query runs. A use is written back (last_used_at, and a session's sliding
// expiry) at most once per Config.TouchEvery, in the same statement.
func (s *Service) Authenticate(ctx context.Context, t *tenancy.Tenant, token string) (authz.Subject, error) {
	tenantID, hash, ok := parseToken(token)
	if !ok || tenantID != t.ID {
		return authz.Subject{}, errs.Errorf(errs.ErrUnauthenticated, "invalid or expired token")
	}
	var sub authz.Subject
	err := s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		sub, err = subjectByTokenHash(ctx, tx, hash, s.touch())
		return err
	})
	return sub, err
}

func (s *Service) touch() touchParams {
	return touchParams{Every: s.cfg.TouchEvery, SessionTTL: s.cfg.SessionTTL, SessionMaxAge: s.cfg.SessionMaxAge}
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
	email, err := address.Field("email", p.Email)
	if err := errs.FirstError(err, validateName("name", p.Name)); err != nil {
		return nil, err
	}
	var hash string
	if p.Password != nil {
		if err := validatePassword(*p.Password); err != nil {
			return nil, err
		}
		if hash, err = s.hasher.hash(ctx, *p.Password); err != nil {
			return nil, fmt.Errorf("create member: %w", err)
		}
	}
	var m *Member
	err = s.db.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		m, err = insertMember(ctx, tx, insertParams{Email: email, Name: strings.TrimSpace(p.Name), Role: p.Role, PasswordHash: hash})
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
