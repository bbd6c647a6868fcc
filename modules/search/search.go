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
	"github.com/riverqueue/river"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/jobs"
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
	jobs  *jobs.Queue
	lag   prometheus.Histogram
}

// NewService builds the search service, registers its index-lag metric and
// its refresh job's worker.
func NewService(reg Registry, src Sources, az *authz.Authorizer, prom prometheus.Registerer, q *jobs.Queue) (*Service, error) {
	if reg == nil || src == nil || az == nil || prom == nil || q == nil {
		return nil, errors.New("search: registry, sources, authorizer, metrics registry and job queue are required")
	}
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "patchdesk_search_index_lag_seconds",
		Help:    "Seconds between a ticket change's commit and it being searchable.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	if err := prom.Register(lag); err != nil {
		return nil, fmt.Errorf("search metrics: %w", err)
	}
	s := &Service{reg: reg, src: src, authz: az, jobs: q, lag: lag}
	if err := jobs.Add(q, &refreshWorker{svc: s}); err != nil {
		return nil, err
	}
	return s, nil
}

// HandleEvent applies one ticket event to the read model, once. A new
// ticket is searchable when this returns; any later change of indexed text
// is stored here (cheap, bounded) and its tsvectors are computed by a
// refresh job (refresh.go), so that one tenant's stream of big comments
// costs the consumer, and every tenant queued behind it, little.
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
	var st docState
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		fresh, err := outbox.MarkProcessed(ctx, tx, ConsumerGroup, ev.ID)
		if err != nil {
			return err
		}
		if !fresh {
			// Redelivered: the change is stored; make sure a refresh
			// follows in case the first delivery failed to queue it.
			st, err = dirtyState(ctx, tx, data.Ticket.ID)
			st.queue = st.dirty
			return err
		}
		st, err = apply(ctx, tx, ev, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("index event %s: %w", ev.ID, err)
	}
	if st.queue {
		if err := s.queueRefresh(ctx, t, data.Ticket.ID); err != nil {
			return fmt.Errorf("index event %s: %w", ev.ID, err)
		}
	}
	if !st.dirty {
		s.lag.Observe(time.Since(ev.OccurredAt).Seconds())
	}
	return nil
}

// HandleBatch applies a batch of events: per tenant one transaction that
// marks the batch's events processed in one statement and applies the new
// ones in order, then one insert of the refresh jobs they call for.
// Exactly-once holds as in HandleEvent: a tenant's transaction commits its
// processed-event keys with its changes, so a batch redone after a failure
// or a crash skips what it had committed.
func (s *Service) HandleBatch(ctx context.Context, ms []kafka.Message) error {
	vals := make([][]byte, len(ms))
	for i, m := range ms {
		vals[i] = m.Value
	}
	batches, err := events.GroupTicketEvents(vals)
	if err != nil {
		return errors.Join(bus.ErrPermanent, err)
	}
	for _, b := range batches {
		if err := s.applyBatch(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// applyBatch is HandleBatch for one tenant's events.
func (s *Service) applyBatch(ctx context.Context, b *events.TenantBatch) error {
	t, err := s.reg.ByID(ctx, b.TenantID)
	if errors.Is(err, tenancy.ErrTenantNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var (
		refresh []uuid.UUID
		indexed []time.Time
	)
	err = s.reg.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
		refresh, indexed = refresh[:0], indexed[:0]
		fresh, err := outbox.MarkProcessedMany(ctx, tx, ConsumerGroup, b.IDs())
		if err != nil {
			return err
		}
		queued := map[uuid.UUID]bool{}
		for i, ev := range b.Events {
			data := b.Changes[i]
			var st docState
			if fresh[ev.ID] {
				delete(fresh, ev.ID) // a duplicate later in the batch is a redelivery
				if st, err = apply(ctx, tx, ev, data); err != nil {
					return fmt.Errorf("index event %s: %w", ev.ID, err)
				}
			} else {
				if st, err = dirtyState(ctx, tx, data.Ticket.ID); err != nil {
					return fmt.Errorf("index event %s: %w", ev.ID, err)
				}
				st.queue = st.dirty
			}
			if st.queue && !queued[data.Ticket.ID] {
				queued[data.Ticket.ID] = true
				refresh = append(refresh, data.Ticket.ID)
			}
			if !st.dirty {
				indexed = append(indexed, ev.OccurredAt)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(refresh) > 0 {
		params := make([]river.InsertManyParams, len(refresh))
		for i, id := range refresh {
			params[i] = river.InsertManyParams{Args: refreshArgs{TenantID: t.ID, TicketID: id}}
		}
		if err := s.jobs.Insert(ctx, t.DatabaseID, params...); err != nil {
			return fmt.Errorf("queue search refresh: %w", err)
		}
	}
	for _, at := range indexed {
		s.lag.Observe(time.Since(at).Seconds())
	}
	return nil
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
			_, err := upsert(ctx, tx, src.Ticket, src.PublicText, src.InternalText, nil)
			return err
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
