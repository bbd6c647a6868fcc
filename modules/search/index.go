package search

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// What one ticket contributes to the index is bounded, so that a document's
// cost (the text stored per event, the tsvectors computed per refresh, the
// snippet built per search) does not grow with the ticket and can never
// reach PostgreSQL's 1 MB tsvector limit (SQLSTATE 54000): the title (at
// most 200 characters),
// the tags, the first maxBodyChars characters of the description and the
// newest maxCommentChars characters of public and of internal comments.
// A tsvector stores each distinct word of its text once, normalised
// (lower-casing lengthens a few characters by a byte at most), so a
// document holds at most about 1.5 × 4 × (200 + 8,192 + 2 × 16,384) bytes
// ≈ 250 KB of lexemes, plus tags and requester: far from the limit. Older comment text of a long thread is no longer
// searchable; its newest text and the description's beginning are.
const (
	maxBodyChars    = 8 << 10
	maxCommentChars = 16 << 10
)

// staleRefresh is how long a document may wait for its refresh before a
// later event queues another (the first job lost, or failed for good).
const staleRefresh = 30 * time.Second

// docState says whether a document's tsvectors lag behind its text, and
// whether this event should queue the refresh job that computes them.
type docState struct{ dirty, queue bool }

// apply stores one event's change. A ticket's first event is indexed at
// once (title and the bounded description: cheap); later text changes are
// deferred to a refresh job, which coalesces every change made meanwhile.
func apply(ctx context.Context, tx tenancy.Tx, ev *events.Envelope, data *events.TicketChange) (docState, error) {
	tk := data.Ticket
	if ev.Type == events.TicketType(events.Deleted) {
		_, err := tx.Exec(ctx, `DELETE FROM search_docs WHERE ticket_id = $1`, tk.ID)
		return docState{}, err
	}
	public, internal := "", ""
	if c := data.Comment; c != nil && c.Internal {
		internal = c.Body
	} else if c != nil {
		public = c.Body
	}
	deferred := ev.OccurredAt.Truncate(time.Microsecond)
	if ev.Type == events.TicketType(events.Created) {
		// A new ticket has no document yet: straight to the insert, not
		// first an UPDATE that finds nothing.
		return upsert(ctx, tx, tk, public, internal, nil)
	}
	return upsert(ctx, tx, tk, public, internal, &deferred)
}

// docSet is the SET list shared by updateSQL and upsertSQL, with N.x
// standing for the event's value of column x, and docCond their condition.
// Ticket fields only move forward (an older snapshot never overwrites a
// newer one); comment text ($8 public, $9 internal) is appended whatever the
// snapshot's age and trimmed to its newest $12 characters, exactly as
// Reindex trims the whole thread, joined with ' ' as the tickets module
// joins comments. The document is marked dirty since $13 (NULL: compute
// now); the table's trigger (migration 00007) computes the tsvectors of an
// unmarked row, leaves a marked one to the refresh job, and drops the mark
// when no indexed text changed.
const (
	docSet = `
		number = N.number,
		title = CASE WHEN d.ticket_version <= N.ticket_version THEN N.title ELSE d.title END,
		status = CASE WHEN d.ticket_version <= N.ticket_version THEN N.status ELSE d.status END,
		requester_email = CASE WHEN d.ticket_version <= N.ticket_version THEN N.requester_email ELSE d.requester_email END,
		tags_text = CASE WHEN d.ticket_version <= N.ticket_version THEN N.tags_text ELSE d.tags_text END,
		body = CASE WHEN d.ticket_version <= N.ticket_version THEN N.body ELSE d.body END,
		ticket_version = greatest(d.ticket_version, N.ticket_version),
		public_text = CASE WHEN $8 = '' THEN d.public_text ELSE right(concat_ws(' ', nullif(d.public_text, ''), $8), $12) END,
		internal_text = CASE WHEN $9 = '' THEN d.internal_text ELSE right(concat_ws(' ', nullif(d.internal_text, ''), $9), $12) END,
		dirty_since = coalesce(d.dirty_since, $13),
		updated_at = now()`
	docCond = `(d.ticket_version <= N.ticket_version OR $8 <> '' OR $9 <> '')`
)

var (
	params   = strings.NewReplacer("N.number", "$2", "N.title", "$3", "N.status", "$4", "N.requester_email", "$5", "N.tags_text", "$6", "N.body", "left($7, $11)", "N.ticket_version", "$10")
	excluded = strings.NewReplacer("N.", "EXCLUDED.")

	// updateSQL applies a change to an existing document. It is tried
	// before an INSERT because a BEFORE INSERT trigger runs, computing
	// tsvectors, even for a row that then conflicts.
	updateSQL = `UPDATE search_docs d SET` + params.Replace(docSet) + `
	WHERE d.ticket_id = $1 AND ` + params.Replace(docCond) + `
	RETURNING d.dirty_since`

	// upsertSQL writes a new document, or updates one like updateSQL.
	upsertSQL = `INSERT INTO search_docs AS d (ticket_id, number, title, status, requester_email, tags_text, body,
		public_text, internal_text, ticket_version)
	VALUES ($1, $2, $3, $4, $5, $6, left($7, $11), right($8, $12), right($9, $12), $10)
	ON CONFLICT (ticket_id) DO UPDATE SET` + excluded.Replace(docSet) + `
	WHERE ` + excluded.Replace(docCond) + `
	RETURNING d.dirty_since`
)

// upsert writes a document. With deferAt (the consumer), a change to an
// existing document is stored and marked for the refresh job, and a new
// document is indexed at once; without (Reindex), the document is indexed
// at once.
func upsert(ctx context.Context, tx tenancy.Tx, tk events.Ticket, public, internal string, deferAt *time.Time) (docState, error) {
	// Trimmed here too, so a huge text is not shipped to be thrown away;
	// trimming twice gives the same text as trimming once.
	args := []any{tk.ID, tk.Number, stripSentinels(tk.Title), tk.Status, tk.RequesterEmail, stripSentinels(strings.Join(tk.Tags, " ")),
		headRunes(stripSentinels(tk.Body), maxBodyChars), tailRunes(stripSentinels(public), maxCommentChars),
		tailRunes(stripSentinels(internal), maxCommentChars), tk.Version, maxBodyChars, maxCommentChars, nil}
	var since *time.Time
	err := pgx.ErrNoRows
	if deferAt != nil {
		err = tx.QueryRow(ctx, updateSQL, append(args[:12:12], deferAt)...).Scan(&since)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// No document yet (or an older snapshot without text, which the
		// conflict clause ignores).
		err = tx.QueryRow(ctx, upsertSQL, args...).Scan(&since)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return docState{}, nil
	}
	if err != nil {
		return docState{}, fmt.Errorf("index ticket %d: %w", tk.Number, err)
	}
	return stateOf(since, deferAt), nil
}

// stateOf tells from a document's dirty mark whether this event must queue
// its refresh: it made the document dirty, or the mark is stale.
func stateOf(since, deferAt *time.Time) docState {
	if since == nil {
		return docState{}
	}
	mine := deferAt != nil && since.Equal(*deferAt)
	return docState{dirty: true, queue: mine || time.Since(*since) > staleRefresh}
}

// dirtyState reads a document's dirty mark.
func dirtyState(ctx context.Context, tx tenancy.Tx, ticket uuid.UUID) (docState, error) {
	var since *time.Time
	err := tx.QueryRow(ctx, `SELECT dirty_since FROM search_docs WHERE ticket_id = $1`, ticket).Scan(&since)
	if errors.Is(err, pgx.ErrNoRows) {
		return docState{}, nil
	}
	if err != nil {
		return docState{}, fmt.Errorf("read index state: %w", err)
	}
	return docState{dirty: since != nil}, nil
}

// headRunes returns the first n characters of s (PostgreSQL's left).
func headRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// tailRunes returns the last n characters of s (PostgreSQL's right).
func tailRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s)
	for ; n > 0 && i > 0; n-- {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[i:]
}
