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
// cost (the tsvectors recomputed on every write, the snippet built on every
// search) does not grow with the ticket and can never reach PostgreSQL's
// 1 MB tsvector limit (SQLSTATE 54000): the title (at most 200 characters),
// the tags, the first maxBodyChars characters of the description and the
// newest maxCommentChars characters of public and of internal comments.
// A tsvector's lexeme bytes never exceed its text's bytes, so a document
// holds at most 4 × (200 + 8,192 + 2 × 16,384) bytes ≈ 165 KB of lexemes,
// plus tags and requester. Older comment text of a long thread is no longer
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
	return upsert(ctx, tx, tk, public, internal, &deferred)
}

// upsertSQL writes a ticket's document in one statement. Ticket fields only
// move forward (an older snapshot never overwrites a newer one); comment
// text ($8 public, $9 internal) is appended whatever the snapshot's age and
// trimmed to its newest $12 characters, exactly as Reindex trims the whole
// thread, joined with ' ' as the tickets module joins comments. An update
// marks the document dirty since $13 (NULL: compute now); the table's
// trigger (migration 00007) computes the tsvectors of a clean row and
// leaves a dirty one to the refresh job, and clears the mark when no
// indexed text changed.
const upsertSQL = `INSERT INTO search_docs (ticket_id, number, title, status, requester_email, tags_text, body,
		public_text, internal_text, ticket_version)
	VALUES ($1, $2, $3, $4, $5, $6, left($7, $11), right($8, $12), right($9, $12), $10)
	ON CONFLICT (ticket_id) DO UPDATE SET
		title = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.title ELSE search_docs.title END,
		status = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.status ELSE search_docs.status END,
		requester_email = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version
			THEN EXCLUDED.requester_email ELSE search_docs.requester_email END,
		tags_text = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.tags_text ELSE search_docs.tags_text END,
		body = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.body ELSE search_docs.body END,
		ticket_version = greatest(search_docs.ticket_version, EXCLUDED.ticket_version),
		public_text = CASE WHEN $8 = '' THEN search_docs.public_text
			ELSE right(concat_ws(' ', nullif(search_docs.public_text, ''), $8), $12) END,
		internal_text = CASE WHEN $9 = '' THEN search_docs.internal_text
			ELSE right(concat_ws(' ', nullif(search_docs.internal_text, ''), $9), $12) END,
		dirty_since = coalesce(search_docs.dirty_since, $13),
		updated_at = now()
	WHERE search_docs.ticket_version <= EXCLUDED.ticket_version OR $8 <> '' OR $9 <> ''
	RETURNING dirty_since`

func upsert(ctx context.Context, tx tenancy.Tx, tk events.Ticket, public, internal string, deferAt *time.Time) (docState, error) {
	// Trimmed here too, so a huge text is not shipped to be thrown away;
	// trimming twice gives the same text as trimming once.
	var since *time.Time
	err := tx.QueryRow(ctx, upsertSQL,
		tk.ID, tk.Number, stripSentinels(tk.Title), tk.Status, tk.RequesterEmail, stripSentinels(strings.Join(tk.Tags, " ")),
		headRunes(stripSentinels(tk.Body), maxBodyChars), tailRunes(stripSentinels(public), maxCommentChars),
		tailRunes(stripSentinels(internal), maxCommentChars), tk.Version, maxBodyChars, maxCommentChars, deferAt).Scan(&since)
	if errors.Is(err, pgx.ErrNoRows) {
		return docState{}, nil // an older snapshot without text: nothing to do
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
