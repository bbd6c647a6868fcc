package members

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchdesk/patchdesk/modules/address"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Member is a person with access to a tenant: staff or customer.
type Member struct {
	ID uuid.UUID `json:"id"`
	// Email is in canonical form (package address).
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Active    bool      `json:"active"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

const memberColumns = `id, email, name, role, active, version, created_at`

func scanMember(row pgx.Row) (*Member, error) {
	var m Member
	err := row.Scan(&m.ID, &m.Email, &m.Name, &m.Role, &m.Active, &m.Version, &m.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.Errorf(errs.ErrNotFound, "member not found")
	}
	if err != nil {
		return nil, fmt.Errorf("scan member: %w", err)
	}
	return &m, nil
}

// insertParams describes a new member row; Email is canonical.
type insertParams struct {
	Email, Name, Role, PasswordHash string
}

func insertMember(ctx context.Context, tx tenancy.Tx, p insertParams) (*Member, error) {
	var hash *string
	if p.PasswordHash != "" {
		hash = &p.PasswordHash
	}
	m, err := scanMember(tx.QueryRow(ctx,
		`INSERT INTO members (email, name, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING `+memberColumns,
		p.Email, p.Name, p.Role, hash))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil, errs.Errorf(errs.ErrConflict, "a member with email %s already exists", p.Email)
	}
	if err != nil {
		return nil, fmt.Errorf("insert member: %w", err)
	}
	return m, nil
}

func getMember(ctx context.Context, tx tenancy.Tx, id uuid.UUID, forUpdate bool) (*Member, error) {
	q := `SELECT ` + memberColumns + ` FROM members WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return scanMember(tx.QueryRow(ctx, q, id))
}

// listMembers pages members by (email, id) after the cursor position.
func listMembers(ctx context.Context, tx tenancy.Tx, afterEmail string, afterID uuid.UUID, limit int) ([]*Member, error) {
	rows, err := tx.Query(ctx, `SELECT `+memberColumns+` FROM members
		WHERE (email, id) > ($1, $2) ORDER BY email, id LIMIT $3`, afterEmail, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	out := []*Member{}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// otherActiveOwners counts active owners besides id, locking them so two
// concurrent demotions cannot both see the other as the remaining owner.
func otherActiveOwners(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM members WHERE role = 'owner' AND active ORDER BY id FOR UPDATE`)
	if err != nil {
		return 0, fmt.Errorf("lock owners: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, fmt.Errorf("lock owners: %w", err)
	}
	n := 0
	for _, o := range ids {
		if o != id {
			n++
		}
	}
	return n, nil
}

func updateMember(ctx context.Context, tx tenancy.Tx, id uuid.UUID, role string, active bool) (*Member, error) {
	return scanMember(tx.QueryRow(ctx, `UPDATE members SET role = $2, active = $3, version = version + 1, updated_at = now()
		WHERE id = $1 RETURNING `+memberColumns, id, role, active))
}

type credentials struct {
	Member       Member
	PasswordHash *string
}

// memberByEmail finds a member by canonical email (byte equality, the
// unique index's own comparison).
func memberByEmail(ctx context.Context, tx tenancy.Tx, email string) (*credentials, error) {
	var c credentials
	m := &c.Member
	err := tx.QueryRow(ctx, `SELECT `+memberColumns+`, password_hash FROM members WHERE email = $1`, email).
		Scan(&m.ID, &m.Email, &m.Name, &m.Role, &m.Active, &m.Version, &m.CreatedAt, &c.PasswordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find member by email: %w", err)
	}
	return &c, nil
}

func insertToken(ctx context.Context, tx tenancy.Tx, memberID uuid.UUID, kind, name string, hash []byte, expires *time.Time) (uuid.UUID, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO tokens (member_id, kind, name, hash, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		memberID, kind, name, hash, expires).Scan(&id)
	if err != nil {
		return uuid.Nil, fmt.Errorf("insert token: %w", err)
	}
	return id, nil
}

// touchParams say how a use of a credential is written back.
type touchParams struct {
	Every, SessionTTL, SessionMaxAge time.Duration
}

// subjectByTokenHash resolves an unexpired credential of an active member.
// In the same statement it records the use when the last one recorded is
// older than p.Every, sliding a session's expiry to SessionTTL from now
// (bounded by SessionMaxAge from its creation): one write per credential per
// interval, not per request. A data-modifying WITH runs exactly once whether
// or not the outer query reads it.
func subjectByTokenHash(ctx context.Context, tx tenancy.Tx, hash []byte, p touchParams) (authz.Subject, error) {
	var s authz.Subject
	err := tx.QueryRow(ctx, `WITH cred AS (
			SELECT t.id, t.kind, t.created_at, t.last_used_at, m.id AS member_id, m.email, m.name, m.role
			FROM tokens t JOIN members m ON m.id = t.member_id
			WHERE t.hash = $1 AND m.active AND (t.expires_at IS NULL OR t.expires_at > now())
		), touched AS (
			UPDATE tokens t SET last_used_at = now(),
				expires_at = CASE WHEN t.kind = 'session'
					THEN least(now() + $3::bigint * interval '1 microsecond', t.created_at + $4::bigint * interval '1 microsecond')
					ELSE t.expires_at END
			FROM cred WHERE t.id = cred.id
				AND (cred.last_used_at IS NULL OR cred.last_used_at <= now() - $2::bigint * interval '1 microsecond')
		)
		SELECT id, kind, member_id, email, name, role FROM cred`,
		hash, p.Every.Microseconds(), p.SessionTTL.Microseconds(), p.SessionMaxAge.Microseconds()).
		Scan(&s.TokenID, &s.TokenKind, &s.MemberID, &s.Email, &s.Name, &s.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errs.Errorf(errs.ErrUnauthenticated, "invalid or expired token")
	}
	if err != nil {
		return s, fmt.Errorf("look up token: %w", err)
	}
	return s, nil
}

// deleteExpiredTokens drops a member's expired credentials (run at login,
// so they do not pile up).
func deleteExpiredTokens(ctx context.Context, tx tenancy.Tx, memberID uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE member_id = $1 AND expires_at <= now()`, memberID); err != nil {
		return fmt.Errorf("delete expired tokens: %w", err)
	}
	return nil
}

var errCredentialNotFound = errs.Errorf(errs.ErrNotFound, "credential not found")

const credentialColumns = `t.id, t.kind, t.member_id, m.email, t.name, t.created_at, t.last_used_at, t.expires_at`

func scanCredential(row pgx.Row, extra ...any) (*Credential, error) {
	var c Credential
	err := row.Scan(append([]any{&c.ID, &c.Kind, &c.MemberID, &c.MemberEmail, &c.Name, &c.CreatedAt, &c.LastUsedAt, &c.ExpiresAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errCredentialNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan credential: %w", err)
	}
	return &c, nil
}

// credentialFilter selects a page of credentials; a zero Member is everyone.
type credentialFilter struct {
	Kind   string
	Member uuid.UUID
	After  *credentialCursor
	Limit  int
}

// listCredentials pages unexpired credentials newest first. Like
// listTickets, its WHERE clause is built from constant fragments only.
func listCredentials(ctx context.Context, tx tenancy.Tx, f credentialFilter) ([]*Credential, error) {
	where := []string{"t.kind = $1", "(t.expires_at IS NULL OR t.expires_at > now())"}
	args := []any{f.Kind}
	if f.Member != uuid.Nil {
		args = append(args, f.Member)
		where = append(where, "t.member_id = $"+strconv.Itoa(len(args)))
	}
	if f.After != nil {
		args = append(args, f.After.CreatedAt, f.After.ID)
		where = append(where, fmt.Sprintf("(t.created_at, t.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, f.Limit)
	rows, err := tx.Query(ctx, `SELECT `+credentialColumns+` FROM tokens t JOIN members m ON m.id = t.member_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY t.created_at DESC, t.id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	out := []*Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// lockCredential loads an unexpired credential and its holder's role, locked.
func lockCredential(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (*Credential, string, error) {
	var role string
	c, err := scanCredential(tx.QueryRow(ctx, `SELECT `+credentialColumns+`, m.role FROM tokens t JOIN members m ON m.id = t.member_id
		WHERE t.id = $1 AND (t.expires_at IS NULL OR t.expires_at > now()) FOR UPDATE OF t`, id), &role)
	return c, role, err
}

func deleteToken(ctx context.Context, tx tenancy.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id); err != nil {
		return fmt.Errorf("revoke credential: %w", err)
	}
	return nil
}

// ActiveRole returns the role of an active member; other modules use it
// (through their own small interface) instead of reading the members table.
func (s *Service) ActiveRole(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (string, error) {
	var role string
	err := tx.QueryRow(ctx, `SELECT role FROM members WHERE id = $1 AND active`, id).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errs.Errorf(errs.ErrNotFound, "member %s is not an active member", id)
	}
	if err != nil {
		return "", fmt.Errorf("look up member role: %w", err)
	}
	return role, nil
}

// MemberByEmail returns the id and role of the active member with email, if
// any. email is canonicalised first (package address); an address that has
// no canonical form belongs to no member.
func (s *Service) MemberByEmail(ctx context.Context, tx tenancy.Tx, email string) (uuid.UUID, string, bool, error) {
	var (
		id   uuid.UUID
		role string
	)
	canonical, err := address.Canonical(email)
	if err != nil {
		return uuid.Nil, "", false, nil
	}
	err = tx.QueryRow(ctx, `SELECT id, role FROM members WHERE email = $1 AND active`, canonical).Scan(&id, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, "", false, nil
	}
	if err != nil {
		return uuid.Nil, "", false, fmt.Errorf("find member by email: %w", err)
	}
	return id, role, true, nil
}

// MemberContact returns the email and role of an active member.
func (s *Service) MemberContact(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (string, string, error) {
	var email, role string
	err := tx.QueryRow(ctx, `SELECT email, role FROM members WHERE id = $1 AND active`, id).Scan(&email, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", errs.Errorf(errs.ErrNotFound, "member %s is not an active member", id)
	}
	if err != nil {
		return "", "", fmt.Errorf("member contact: %w", err)
	}
	return email, role, nil
}
