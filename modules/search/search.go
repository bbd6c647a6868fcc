// Package search keeps a per-tenant full-text read model of tickets, fed by
// its own Kafka consumer group, and answers GET /search with PostgreSQL
// full-text search (websearch syntax, weighted ranking, highlighted
// snippets), authorized exactly like ticket reads.
package search

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/outbox"
	"github.com/patchdesk/patchdesk/tenancy"
)

// ConsumerGroup is the search consumer's Kafka group.
const ConsumerGroup = "patchdesk-search"

// MaxQuery bounds a query, in characters.
const MaxQuery = 1000

// Registry is what search needs from tenancy.
type Registry interface {
	tenancy.TxRunner
	ByID(ctx context.Context, id uuid.UUID) (*tenancy.Tenant, error)
}

// Sources replays the live tickets of a tenant with their comment text, to
// rebuild the read model; the tickets module implements it.
type Sources interface {
	ForEachSource(ctx context.Context, tx tenancy.Tx, fn func(events.TicketText) error) error
}

// Service maintains and queries the search read model.
type Service struct {
	reg   Registry
	src   Sources
	authz *authz.Authorizer
	lag   prometheus.Histogram
}

// NewService builds the search service and registers its index-lag metric.
func NewService(reg Registry, src Sources, az *authz.Authorizer, prom prometheus.Registerer) (*Service, error) {
	if reg == nil || src == nil || az == nil || prom == nil {
		return nil, errors.New("search: registry, sources, authorizer and metrics registry are required")
	}
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "patchdesk_search_index_lag_seconds",
		Help:    "Seconds between a ticket change's commit and it being searchable.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	if err := prom.Register(lag); err != nil {
		return nil, fmt.Errorf("search metrics: %w", err)
	}
	return &Service{reg: reg, src: src, authz: az, lag: lag}, nil
}

// HandleEvent applies one ticket event to the read model, once.
func (s *Service) HandleEvent(ctx context.Context, m kafka.Message) error {
	ev, err := events.Decode(m.Value)
	if err != nil {
		return errors.Join(bus.ErrPermanent, err)
	}
	if !events.IsTicket(ev.Type) {
		return nil
	}
	data, err := ev.TicketChange()
	if err != nil {
		return errors.Join(bus.ErrPermanent, err)
	}
	t, err := s.reg.ByID(ctx, ev.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		fresh, err := outbox.MarkProcessed(ctx, tx, ConsumerGroup, ev.ID)
		if err != nil || !fresh {
			return err
		}
		return apply(ctx, tx, ev.Type, data)
	})
	if err != nil {
		return fmt.Errorf("index event %s: %w", ev.ID, err)
	}
	s.lag.Observe(time.Since(ev.OccurredAt).Seconds())
	return nil
}

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

func apply(ctx context.Context, tx tenancy.Tx, eventType string, data *events.TicketChange) error {
	tk := data.Ticket
	if eventType == events.TicketType(events.Deleted) {
		_, err := tx.Exec(ctx, `DELETE FROM search_docs WHERE ticket_id = $1`, tk.ID)
		return err
	}
	public, internal := "", ""
	if c := data.Comment; c != nil && c.Internal {
		internal = c.Body
	} else if c != nil {
		public = c.Body
	}
	return upsert(ctx, tx, tk, public, internal)
}

// upsertSQL writes a ticket's document in one statement, so its tsvectors
// are computed once per event. Ticket fields only move forward (an older
// snapshot never overwrites a newer one); comment text ($8 public, $9
// internal) is appended whatever the snapshot's age and trimmed to its
// newest $12 characters, exactly as Reindex trims the whole thread, joined
// with ' ' as the tickets module joins comments.
const upsertSQL = `INSERT INTO search_docs (ticket_id, number, title, status, requester_email, tags_text, body,
		public_text, internal_text, ticket_version)
	VALUES ($1, $2, $3, $4, $5, $6, left($7, $11), right($8, $12), right($9, $12), $10)
	ON CONFLICT (ticket_id) DO UPDATE SET
		title = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.title ELSE search_docs.title END,
		status = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.status ELSE search_docs.status END,
		requester_email = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.requester_email ELSE search_docs.requester_email END,
		tags_text = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.tags_text ELSE search_docs.tags_text END,
		body = CASE WHEN search_docs.ticket_version <= EXCLUDED.ticket_version THEN EXCLUDED.body ELSE search_docs.body END,
		ticket_version = greatest(search_docs.ticket_version, EXCLUDED.ticket_version),
		public_text = CASE WHEN $8 = '' THEN search_docs.public_text
			ELSE right(concat_ws(' ', nullif(search_docs.public_text, ''), $8), $12) END,
		internal_text = CASE WHEN $9 = '' THEN search_docs.internal_text
			ELSE right(concat_ws(' ', nullif(search_docs.internal_text, ''), $9), $12) END,
		updated_at = now()
	WHERE search_docs.ticket_version <= EXCLUDED.ticket_version OR $8 <> '' OR $9 <> ''`

func upsert(ctx context.Context, tx tenancy.Tx, tk events.Ticket, public, internal string) error {
	// Trimmed here too, so a huge text is not shipped to be thrown away;
	// trimming twice gives the same text as trimming once.
	_, err := tx.Exec(ctx, upsertSQL,
		tk.ID, tk.Number, stripSentinels(tk.Title), tk.Status, tk.RequesterEmail, stripSentinels(strings.Join(tk.Tags, " ")),
		headRunes(stripSentinels(tk.Body), maxBodyChars), tailRunes(stripSentinels(public), maxCommentChars),
		tailRunes(stripSentinels(internal), maxCommentChars), tk.Version, maxBodyChars, maxCommentChars)
	if err != nil {
		return fmt.Errorf("index ticket %d: %w", tk.Number, err)
	}
	return nil
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

// Reindex rebuilds a tenant's read model from the source tables in one
// transaction: searches keep answering from the old rows until it commits.
func (s *Service) Reindex(ctx context.Context, t *tenancy.Tenant) (int, error) {
	n := 0
	err := s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM search_docs`); err != nil {
			return fmt.Errorf("clear search docs: %w", err)
		}
		return s.src.ForEachSource(ctx, tx, func(src events.TicketText) error {
			n++
			return upsert(ctx, tx, src.Ticket, src.PublicText, src.InternalText)
		})
	})
	if err != nil {
		return 0, fmt.Errorf("reindex %s: %w", t.Slug, err)
	}
	return n, nil
}

// Hit is one search result. Snippet is safe HTML: escaped text whose only
// markup is <mark>…</mark> around the matched words.
type Hit struct {
	Number  int64   `json:"number"`
	Title   string  `json:"title"`
	Status  string  `json:"status"`
	Snippet string  `json:"snippet"`
	Rank    float64 `json:"rank"`
}

// cleanQuery refuses queries PostgreSQL cannot take as text and splits off
// the last word for prefix matching ("" when it is not a plain word).
func cleanQuery(q string) (rest, last string, err error) {
	q = strings.TrimSpace(q)
	switch {
	case q == "":
		return "", "", errs.Errorf(errs.ErrInvalidInput, "q must not be empty")
	case !utf8.ValidString(q) || strings.ContainsRune(q, 0):
		return "", "", errs.Errorf(errs.ErrInvalidInput, "q must be valid UTF-8 text")
	case utf8.RuneCountInString(q) > MaxQuery:
		return "", "", errs.Errorf(errs.ErrInvalidInput, "q must be at most %d characters", MaxQuery)
	}
	i := strings.LastIndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if i < 0 {
		return "", q, nil
	}
	sep, size := utf8.DecodeRuneInString(q[i:])
	word := q[i+size:]
	if word == "" || sep == '-' || sep == '"' {
		return q, "", nil // an exclusion or a phrase: no prefix expansion
	}
	return q[:i+size], word, nil
}

// Search ranks the tenant's tickets for q. Title matches come first, then
// by weighted rank. Customers search only their own tickets' public text;
// staff also internal notes.
func (s *Service) Search(ctx context.Context, sub authz.Subject, t *tenancy.Tenant, q string, limit int) ([]Hit, error) {
	rest, last, err := cleanQuery(q)
	if err != nil {
		return nil, err
	}
	requester := ""
	switch {
	case s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.TicketsRead, Resource: authz.ResourceTickets}):
	case s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.TicketsRead, Resource: authz.ResourceTickets, Own: true}):
		requester = sub.Email
	default:
		return nil, errs.Errorf(errs.ErrForbidden, "role %s may not search tickets", sub.Role)
	}
	internal := s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.CommentsReadInternal, Resource: authz.ResourceTickets})
	hits := []Hit{}
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		query := searchSQLs[b2i(internal)][b2i(strings.Contains(q, `"`))]
		// Plan each search with its own words: how common they are decides
		// between the GIN index and the newest-first scan.
		if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_custom_plan`); err != nil {
			return fmt.Errorf("search: %w", err)
		}
		rows, err := tx.Query(ctx, query, q, rest, last, requester, limit)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h Hit
			if err := rows.Scan(&h.Number, &h.Title, &h.Status, &h.Snippet, &h.Rank); err != nil {
				return fmt.Errorf("search: %w", err)
			}
			h.Snippet = snippetHTML(h.Snippet)
			hits = append(hits, h)
		}
		return rows.Err()
	})
	return hits, err
}

// maxCandidates bounds how many matches are ranked: a query matching more
// ranks only its most recent maxCandidates matches (found newest-first on the
// number index), which keeps common words as fast as rare ones. Measured at
// 100,000 tickets: ranking 2,000 candidates costs 25 ms for a word in 5% of
// tickets, 500 costs 7 ms.
const maxCandidates = 500

// tsqueryExpr is the query: $1 in websearch syntax, or-ed with a prefix
// match of its last word ($2 the rest, $3 the word; letters and digits only,
// so it cannot carry tsquery operators). It is written inline, not in a CTE,
// so that with a custom plan it folds to a constant the planner can estimate.
const tsqueryExpr = `(websearch_to_tsquery('english', $1) || CASE WHEN $3 = '' THEN ''::tsquery
	ELSE websearch_to_tsquery('english', $2) && to_tsquery('english', $3 || ':*') END)`

// searchSQL builds the query over one document column (doc_all for staff,
// doc_public for customers); $4 is the requester filter (empty for none), $5
// the limit. Title matches sort first (doc_title is stored, not re-parsed);
// snippets are computed for the returned page only. newest orders the
// candidates: "d.number" lets the planner walk the number index newest-first
// (best for common words); "d.number + 0" steers it to the GIN index, for
// phrases, which PostgreSQL estimates as if they were as common as their words.
func searchSQL(doc, extraText, newest string) string {
	return `
WITH candidates AS (
	SELECT d.number, d.title, d.status, d.body, d.public_text` + extraText + ` AS more, d.doc_title, d.` + doc + ` AS doc
	FROM search_docs d
	WHERE d.` + doc + ` @@ ` + tsqueryExpr + ` AND ($4 = '' OR lower(d.requester_email) = lower($4))
	ORDER BY ` + newest + ` DESC
	LIMIT ` + strconv.Itoa(maxCandidates) + `
), ranked AS (
	SELECT number, title, status, body, more, (doc_title @@ ` + tsqueryExpr + `)::int AS title_hit,
		ts_rank(doc, ` + tsqueryExpr + `) AS rank
	FROM candidates
	ORDER BY title_hit DESC, rank DESC, number DESC
	LIMIT $5
)
SELECT number, title, status,
	ts_headline('english', translate(title || ' — ' || body || ' ' || more, '` + markStart + markStop + `', ''), ` + tsqueryExpr + `,
		'MaxFragments=2, MaxWords=20, MinWords=6, StartSel=` + markStart + `, StopSel=` + markStop + `'),
	(title_hit + rank)::float8
FROM ranked ORDER BY title_hit DESC, rank DESC, number DESC`
}

// searchSQLs holds the statements by [staff][phrase].
var searchSQLs = [2][2]string{
	{searchSQL("doc_public", "", "d.number"), searchSQL("doc_public", "", "d.number + 0")},
	{searchSQL("doc_all", " || ' ' || d.internal_text", "d.number"), searchSQL("doc_all", " || ' ' || d.internal_text", "d.number + 0")},
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ts_headline marks matches with two private-use characters instead of
// HTML, which are stripped from the text first, so that the snippet can be
// HTML-escaped as a whole and only then given its <mark> tags: the user's
// text can never contribute markup.
const (
	markStart = "\uE000"
	markStop  = "\uE001"
)

// stripSentinels removes the highlight sentinels from text to be indexed.
func stripSentinels(s string) string {
	if !strings.ContainsAny(s, markStart+markStop) {
		return s
	}
	return strings.NewReplacer(markStart, "", markStop, "").Replace(s)
}

// snippetHTML escapes a ts_headline result and turns its sentinels into
// balanced <mark> elements.
func snippetHTML(headline string) string {
	escaped := html.EscapeString(headline)
	var b strings.Builder
	open := false
	for _, r := range escaped {
		switch {
		case r == '\uE000' && !open:
			b.WriteString("<mark>")
			open = true
		case r == '\uE001' && open:
			b.WriteString("</mark>")
			open = false
		case r == '\uE000' || r == '\uE001':
		default:
			b.WriteRune(r)
		}
	}
	if open {
		b.WriteString("</mark>")
	}
	return b.String()
}
