package attachments

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
)

const columns = `id, ticket_id, comment_id, internal, uploader_id, name, size, content_type, sha256, status, created_at`

// errNotFound is what every attachment the caller may not see answers.
var errNotFound = errs.Errorf(errs.ErrNotFound, "attachment not found")

func scan(row pgx.Row) (*Attachment, error) {
	var a Attachment
	err := row.Scan(&a.ID, &a.TicketID, &a.CommentID, &a.Internal, &a.UploaderID, &a.Name, &a.Size, &a.ContentType,
		&a.SHA256, &a.Status, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan attachment: %w", err)
	}
	return &a, nil
}

// used is the bytes the tenant stores (infected files' blobs are deleted).
func used(ctx context.Context, tx tenancy.Tx) (int64, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0)::bigint FROM attachments WHERE status <> 'infected'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("attachment usage: %w", err)
	}
	return n, nil
}

// lockQuota serializes the quota check and insert of concurrent uploads of
// one tenant (the key names the schema, so tenants never wait on each other).
func lockQuota(ctx context.Context, tx tenancy.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('attachments-quota:' || current_schema()))`); err != nil {
		return fmt.Errorf("lock attachment quota: %w", err)
	}
	return nil
}

func insert(ctx context.Context, tx tenancy.Tx, a *Attachment) (*Attachment, error) {
	return scan(tx.QueryRow(ctx, `INSERT INTO attachments (id, ticket_id, uploader_id, name, size, content_type, sha256, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+columns,
		a.ID, a.TicketID, a.UploaderID, a.Name, a.Size, a.ContentType, a.SHA256, a.Status))
}

func get(ctx context.Context, tx tenancy.Tx, ticketID, id uuid.UUID) (*Attachment, error) {
	return scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM attachments WHERE id = $1 AND ticket_id = $2`, id, ticketID))
}

// claim hands the uploader's unclaimed, available files on a ticket to a
// comment; it returns those it claimed.
func claim(ctx context.Context, tx tenancy.Tx, ticketID, commentID, uploader uuid.UUID, internal bool, ids []uuid.UUID) ([]*Attachment, error) {
	rows, err := tx.Query(ctx, `UPDATE attachments SET comment_id = $1, internal = $2
		WHERE id = ANY($3) AND ticket_id = $4 AND uploader_id = $5 AND comment_id IS NULL AND status = 'available'
		RETURNING `+columns, commentID, internal, ids, ticketID, uploader)
	if err != nil {
		return nil, fmt.Errorf("claim attachments: %w", err)
	}
	return collect(rows)
}

// ofComments lists the files of comments, oldest first.
func ofComments(ctx context.Context, tx tenancy.Tx, commentIDs []uuid.UUID) ([]*Attachment, error) {
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM attachments WHERE comment_id = ANY($1) ORDER BY created_at, id`, commentIDs)
	if err != nil {
		return nil, fmt.Errorf("list comment attachments: %w", err)
	}
	return collect(rows)
}

func collect(rows pgx.Rows) ([]*Attachment, error) {
	defer rows.Close()
	var out []*Attachment
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attachments: %w", err)
	}
	return out, nil
}
