package audit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/audit"
	"github.com/patchdesk/patchdesk/tenancy"
)

// TestRecordCommitsWithTheAction: an entry written in a transaction that
// rolls back is gone with it; one that commits is listed, newest first.
func TestRecordCommitsWithTheAction(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "audited")
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, "audited")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("action failed")
	err = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		if err := audit.Record(ctx, tx, uuid.Nil, "test.rolled_back", "thing:1", nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	for i := range 3 {
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return audit.Record(ctx, tx, uuid.Nil, "test.committed", fmt.Sprintf("thing:%d", i), map[string]any{"n": i})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	all := s.Call(t, "GET", "/t/audited/api/v1/audit", owner, nil)
	var actions []string
	for _, e := range all.Items() {
		actions = append(actions, e["action"].(string)+" "+e["target"].(string))
		if e["action"] == "test.rolled_back" {
			t.Errorf("rolled-back entry listed: %v", e)
		}
	}
	if len(actions) < 3 || actions[0] != "test.committed thing:2" || actions[2] != "test.committed thing:0" {
		t.Fatalf("audit log: %v", actions)
	}
	one := s.Call(t, "GET", "/t/audited/api/v1/audit?target=thing:1", owner, nil)
	if items := one.Items(); len(items) != 1 || items[0]["data"].(map[string]any)["n"] != float64(1) || items[0]["actor_id"] != nil {
		t.Fatalf("filtered by target: %s", one)
	}
}

// TestListPagesAndIsForOwnersAndAdmins: cursors walk the whole log without
// repeats, a hostile cursor is a 400, and other roles get 403.
func TestListPagesAndIsForOwnersAndAdmins(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "paged")
	admin := s.AddMember(t, "paged", owner, "admin")
	agent := s.AddMember(t, "paged", owner, "agent")
	ctx := context.Background()
	tn, _ := s.Reg.Lookup(ctx, "paged")
	for i := range 5 {
		if err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return audit.Record(ctx, tx, uuid.Nil, "test.paged", fmt.Sprintf("p:%d", i), nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[float64]bool{}
	path := "/t/paged/api/v1/audit?target=&limit=2"
	for pages := 0; ; pages++ {
		r := s.Call(t, "GET", path, admin.Token, nil)
		if r.Status != 200 || pages > 10 {
			t.Fatalf("page %d: %s", pages, r)
		}
		for _, e := range r.Items() {
			id := e["id"].(float64)
			if seen[id] {
				t.Fatalf("entry %v listed twice", id)
			}
			seen[id] = true
		}
		next, _ := r.JSON["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/t/paged/api/v1/audit?limit=2&cursor=" + next
	}
	if len(seen) < 5 {
		t.Fatalf("paged through %d entries, want at least 5", len(seen))
	}
	if r := s.Call(t, "GET", "/t/paged/api/v1/audit?cursor=bm90LWpzb24", owner, nil); !r.IsProblem(400) {
		t.Errorf("bad cursor: %s", r)
	}
	if r := s.Call(t, "GET", "/t/paged/api/v1/audit", agent.Token, nil); !r.IsProblem(403) {
		t.Errorf("agent reads the audit log: %s", r)
	}
}
