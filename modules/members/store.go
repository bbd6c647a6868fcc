package members

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Member is a person with access to a tenant: staff or customer.
type Member struct {
	ID        uuid.UUID `json:"id"`
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

// insertParams describes a new member row.
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
		WHERE (lower(email), id) > (lower($1), $2) ORDER BY lower(email), id LIMIT $3`, afterEmail, afterID, limit)
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

func memberByEmail(ctx context.Context, tx tenancy.Tx, email string) (*credentials, error) {
	var c credentials
	m := &c.Member
	err := tx.QueryRow(ctx, `SELECT `+memberColumns+`, password_hash FROM members WHERE lower(email) = lower($1)`, email).
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

func subjectByTokenHash(ctx context.Context, tx tenancy.Tx, hash []byte) (authz.Subject, error) {
	var s authz.Subject
	err := tx.QueryRow(ctx, `SELECT m.id, m.email, m.name, m.role FROM tokens t JOIN members m ON m.id = t.member_id
		WHERE t.hash = $1 AND m.active AND (t.expires_at IS NULL OR t.expires_at > now())`, hash).
		Scan(&s.MemberID, &s.Email, &s.Name, &s.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errs.Errorf(errs.ErrUnauthenticated, "invalid or expired token")
	}
	if err != nil {
		return s, fmt.Errorf("look up token: %w", err)
	}
	return s, nil
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

// MemberByEmail returns the id and role of the active member with email, if any.
func (s *Service) MemberByEmail(ctx context.Context, tx tenancy.Tx, email string) (uuid.UUID, string, bool, error) {
	var (
		id   uuid.UUID
		role string
	)
	err := tx.QueryRow(ctx, `SELECT id, role FROM members WHERE lower(email) = lower($1) AND active`, email).Scan(&id, &role)
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
