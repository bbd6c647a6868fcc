package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// TestSnippetIsSafeHTML indexes hostile text through the whole pipeline and
// checks that the snippet's only markup is <mark>.
func TestSnippetIsSafeHTML(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	owner := s.Signup(t, "xss")
	r := s.Call(t, "POST", "/t/xss/api/v1/tickets", owner, map[string]any{"title": `Fire <b onmouseover="x">`,
		"body": `fire <script>alert(1)</script> fire <img src=x onerror=alert(1)> fire x" onfocus="y' z=' fire ` +
			"\uE000evil\uE001 fire \uE001\uE000 fire &lt;not-a-tag&gt;"})
	if r.Status != 201 {
		t.Fatal(r)
	}
	if r := s.Call(t, "POST", "/t/xss/api/v1/tickets/1/comments", owner, map[string]any{"body": `fire commentword </mark><iframe src="javascript:alert(1)"> commentword`}); r.Status != 201 {
		t.Fatal(r)
	}
	var snippet string
	apitest.Eventually(t, 30*time.Second, "the comment indexed", func() bool {
		r := s.Call(t, "GET", "/t/xss/api/v1/search?q="+url.QueryEscape("commentword"), owner, nil)
		if r.Status != 200 || len(r.Items()) != 1 {
			return false
		}
		snippet = fmt.Sprint(r.Items()[0]["snippet"])
		return true
	})
	for _, q := range []string{"fire", "evil", "alert", "onfocus", "commentword"} {
		r := s.Call(t, "GET", "/t/xss/api/v1/search?q="+url.QueryEscape(q), owner, nil)
		if r.Status != 200 || len(r.Items()) != 1 {
			t.Fatalf("search %q: %s", q, r)
		}
		snip := fmt.Sprint(r.Items()[0]["snippet"])
		t.Logf("%s: %s", q, snip)
		if !strings.Contains(snip, "<mark>") {
			t.Errorf("search %q: nothing highlighted in %q", q, snip)
		}
		if rest := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(snip); strings.ContainsAny(rest, "<>\"'\uE000\uE001") {
			t.Errorf("search %q: snippet carries markup besides <mark>: %q", q, snip)
		}
		if strings.Count(snip, "<mark>") != strings.Count(snip, "</mark>") {
			t.Errorf("search %q: unbalanced marks: %q", q, snip)
		}
	}
	if strings.Contains(snippet, "<iframe") || strings.Contains(snippet, "</mark></mark>") {
		t.Errorf("comment snippet not escaped: %q", snippet)
	}
	r = s.Call(t, "GET", "/t/xss/api/v1/search?q=onerror", owner, nil)
	if snip := fmt.Sprint(r.Items()[0]["snippet"]); !strings.Contains(snip, "&lt;img src=x onerror=<mark>alert</mark>") &&
		!strings.Contains(snip, "&lt;img src=x <mark>onerror</mark>") {
		t.Errorf("the img element is not shown escaped: %q", snip)
	}
	// Markup is not indexed (the parser skips tags) but must be shown escaped.
	// The sentinels in the user's text were stripped, so "evil" is highlighted
	// only when searched for.
	r = s.Call(t, "GET", "/t/xss/api/v1/search?q=alert", owner, nil)
	if snip := fmt.Sprint(r.Items()[0]["snippet"]); strings.Contains(snip, "<mark>evil") {
		t.Errorf("user text forged a highlight: %q", snip)
	}
}

// randomText returns about n bytes of distinct words drawn from alphabet:
// every word a new lexeme, the worst case for a tsvector.
func randomText(rng *rand.Rand, n int, alphabet []rune) string {
	var b strings.Builder
	for b.Len() < n {
		for range 6 {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		b.WriteByte(' ')
	}
	return b.String()
}

var (
	latin = []rune("abcdefghijklmnopqrstuvwxyz")
	wide  = []rune("𝔄𝔅𝔇𝔈𝔉𝔊𝔍𝔎𝔏𝔐𝔑𝔒𝔓𝔔𝔖𝔗𝔘𝔙𝔚𝔛𝔜😀😁😂😃😄😅😆😇😈😉")
)

// feed hands one ticket event to the search consumer's handler, as the bus would.
func feed(t *testing.T, s *apitest.Server, tenant uuid.UUID, typ string, change events.TicketChange) {
	t.Helper()
	env, err := events.New(uuid.New(), events.TicketType(typ), &change.Ticket.ID, nil, time.Now(), change)
	if err != nil {
		t.Fatal(err)
	}
	env.TenantID = tenant
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.App.Search.HandleEvent(context.Background(), kafka.Message{Value: raw}); err != nil {
		t.Fatalf("%s event of %d bytes: %v", typ, len(raw), err)
	}
}

// TestHugeTicketIsIndexedWithinBounds feeds the consumer a ticket with a 2 MB
// description and 60 comments of 64 KB of distinct words (plain and 4-byte
// characters): every event succeeds (no SQLSTATE 54000), the document stays
// bounded, and the description's beginning and the newest comments are found.
func TestHugeTicketIsIndexedWithinBounds(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t) // the refresh jobs
	s.Signup(t, "huge")
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "huge")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	tk := events.Ticket{ID: uuid.New(), Number: 1, Title: "Huge", Status: events.StatusOpen, Priority: "normal", Version: 100,
		Body: "descriptionstart " + randomText(rng, 1<<20, latin) + randomText(rng, 1<<20, wide) + " descriptionend"}
	feed(t, s, tn.ID, events.Created, events.TicketChange{Ticket: tk})
	// The comments come with older snapshots, without the description (so
	// that the test does not spend its time encoding 2 MB 60 times): they
	// must not overwrite it, and their text is appended all the same.
	old := tk
	old.Body = ""
	for i := range 60 {
		old.Version = 1 + i
		alphabet := latin
		if i%3 == 2 {
			alphabet = wide
		}
		body := fmt.Sprintf("comment%dstart %s comment%dend", i, randomText(rng, 64000-40, alphabet), i)
		feed(t, s, tn.ID, events.Commented, events.TicketChange{Ticket: old, Comment: &events.Comment{ID: uuid.New(), Body: body, Internal: i%2 == 1}})
	}
	tk.Version = 101
	tk.Status = events.StatusInProgress
	feed(t, s, tn.ID, events.StatusChanged, events.TicketChange{Ticket: tk})
	var bodyLen, publicLen, internalLen, docBytes int
	apitest.Eventually(t, 60*time.Second, "the document refreshed", func() bool {
		var dirty bool
		err = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT length(body), length(public_text), length(internal_text), pg_column_size(doc_all),
				dirty_since IS NOT NULL FROM search_docs`).Scan(&bodyLen, &publicLen, &internalLen, &docBytes, &dirty)
		})
		if err != nil {
			t.Fatal(err)
		}
		return !dirty
	})
	t.Logf("indexed characters: body %d, public %d, internal %d; doc_all %d bytes", bodyLen, publicLen, internalLen, docBytes)
	if bodyLen > 8<<10 || publicLen > 16<<10 || internalLen > 16<<10 {
		t.Errorf("indexed text not bounded: body %d, public %d, internal %d characters", bodyLen, publicLen, internalLen)
	}
	owner := s.Login(t, "huge", "owner@huge.test")
	find := func(q string) int {
		r := s.Call(t, "GET", "/t/huge/api/v1/search?q="+url.QueryEscape(q), owner, nil)
		if r.Status != 200 {
			t.Fatalf("search %q: %s", q, r)
		}
		return len(r.Items())
	}
	for q, want := range map[string]int{"descriptionstart": 1, "comment59end": 1, "comment58end": 1, "descriptionend": 0, "comment0start": 0} {
		if got := find(q); got != want {
			t.Errorf("search %q: %d hits, want %d", q, got, want)
		}
	}
}

// TestReindexOfANoisyTenant rebuilds a tenant whose ticket has 60 comments
// of 64 KB of distinct words: the whole thread is far past the tsvector
// limit, and the rebuilt document equals the one the consumer built.
func TestReindexOfANoisyTenant(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	owner := s.Signup(t, "loud")
	if r := s.Call(t, "POST", "/t/loud/api/v1/tickets", owner, map[string]any{"title": "Loud", "body": "start"}); r.Status != 201 {
		t.Fatal(r)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 60 {
		body := fmt.Sprintf("loud%dstart %s loud%dend", i, randomText(rng, 64000-40, latin), i)
		if r := s.Call(t, "POST", "/t/loud/api/v1/tickets/1/comments", owner, map[string]any{"body": body, "internal": i%2 == 1}); r.Status != 201 {
			t.Fatal(r)
		}
	}
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "loud")
	if err != nil {
		t.Fatal(err)
	}
	doc := func() []string {
		var d []string
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			var a, b, c, e string
			err := tx.QueryRow(ctx, `SELECT body, public_text, internal_text, doc_all::text FROM search_docs`).Scan(&a, &b, &c, &e)
			d = []string{a, b, c, e}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	apitest.Eventually(t, 60*time.Second, "the last comment indexed", func() bool {
		r := s.Call(t, "GET", "/t/loud/api/v1/search?q=loud59end", owner, nil)
		return r.Status == 200 && len(r.Items()) == 1
	})
	consumed := doc()
	n, err := s.App.Search.Reindex(ctx, tn)
	if err != nil || n != 1 {
		t.Fatalf("reindex: %d %v", n, err)
	}
	if rebuilt := doc(); !slices.Equal(consumed, rebuilt) {
		t.Errorf("reindex built another document than the consumer: text lengths %d/%d/%d vs %d/%d/%d",
			len(consumed[0]), len(consumed[1]), len(consumed[2]), len(rebuilt[0]), len(rebuilt[1]), len(rebuilt[2]))
	}
	if r := s.Call(t, "GET", "/t/loud/api/v1/search?q=loud58end", owner, nil); r.Status != 200 || len(r.Items()) != 1 {
		t.Errorf("after reindex: %s", r)
	}
}
