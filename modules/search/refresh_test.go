package search_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/tenancy"
)

// TestRefreshLosesNoChange feeds a burst of comments to one document while
// refresh jobs run: once the document is clean, its vectors are exactly
// those of its final text (no change lost to a refresh computed from an
// older snapshot), and a status change afterwards marks nothing dirty.
func TestRefreshLosesNoChange(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	s.Signup(t, "burst")
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	tk := events.Ticket{ID: uuid.New(), Number: 1, Title: "Burst", Body: "start", Status: events.StatusOpen, Priority: "normal", Version: 1}
	feed(t, s, tn.ID, events.Created, events.TicketChange{Ticket: tk})
	for i := range 40 {
		tk.Version++
		feed(t, s, tn.ID, events.Commented, events.TicketChange{Ticket: tk,
			Comment: &events.Comment{ID: uuid.New(), Body: fmt.Sprintf("word%d %s", i, randomWords(2000)), Internal: i%4 == 3}})
	}
	state := func() (dirty, current bool) {
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT d.dirty_since IS NOT NULL, d.doc_all = v.doc_all AND d.doc_public = v.doc_public
				FROM search_docs d, search_doc_vectors(d.title, d.tags_text, d.body, d.public_text, d.internal_text, d.requester_email) v`).
				Scan(&dirty, &current)
		})
		if err != nil {
			t.Fatal(err)
		}
		return dirty, current
	}
	apitest.Eventually(t, 60*time.Second, "the document refreshed", func() bool { dirty, _ := state(); return !dirty })
	if _, current := state(); !current {
		t.Fatal("clean document whose vectors are not those of its text")
	}
	owner := s.Login(t, "burst", "owner@burst.test")
	for _, q := range []string{"word39", "word38", "start"} {
		if r := s.Call(t, "GET", "/t/burst/api/v1/search?q="+q, owner, nil); r.Status != 200 || len(r.Items()) != 1 {
			t.Errorf("search %s: %s", q, r)
		}
	}
	tk.Version++
	tk.Status = events.StatusPending
	feed(t, s, tn.ID, events.StatusChanged, events.TicketChange{Ticket: tk})
	if dirty, current := state(); dirty || !current {
		t.Errorf("a status change left the document dirty=%v, current=%v", dirty, current)
	}
}
