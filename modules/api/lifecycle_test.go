package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/archive"
	"github.com/patchdesk/patchdesk/tenancy/move"
)

func TestDeleteTenantEverywhere(t *testing.T) {
	s := apitest.New(t, nil)
	ctx := context.Background()
	owner := s.Signup(t, "doomed")
	s.Call(t, "POST", "/t/doomed/api/v1/tickets", owner, map[string]any{"title": "bye", "body": "x"})
	dedicatedDatabase(t, s, "dedicated-doomed")
	// A round trip leaves a retired copy in each database.
	for _, db := range []string{"dedicated-doomed", "main"} {
		if _, err := move.New(s.Reg).Start(ctx, "doomed", db, move.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	tn, _ := s.Reg.Lookup(ctx, "doomed")
	if err := s.Reg.Delete(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if r := s.Call(t, "GET", "/t/doomed/api/v1/me", owner, nil); !r.IsProblem(404) {
		t.Fatalf("deleted tenant still answers: %s", r)
	}
	conn := s.Admin(t)
	var schemas, roles, audit int
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1 || '%'),
		(SELECT count(*) FROM pg_roles WHERE rolname = $2),
		(SELECT count(*) FROM control.tenant_audit WHERE tenant_id = $3 AND action = 'tenant.deleted')`,
		tn.Schema, tn.Role, tn.ID).Scan(&schemas, &roles, &audit)
	if err != nil {
		t.Fatal(err)
	}
	if schemas != 0 || roles != 0 || audit != 1 {
		t.Fatalf("after delete: %d schemas, %d roles, %d audit records", schemas, roles, audit)
	}
	// The slug is free again.
	s.Signup(t, "doomed")
}

func TestExportImportRoundTrip(t *testing.T) {
	src := apitest.New(t, nil)
	ctx := context.Background()
	owner := src.Signup(t, "exported")
	agent := src.AddMember(t, "exported", owner, "agent")
	for i := range 3 {
		r := src.Call(t, "POST", "/t/exported/api/v1/tickets", owner, map[string]any{"title": fmt.Sprintf("Ticket, \"%d\"\nline", i), "body": "ü body", "tags": []string{"a", "b"}})
		src.Call(t, "POST", fmt.Sprintf("/t/exported/api/v1/tickets/%v/comments", r.JSON["number"]), agent.Token, map[string]any{"body": "reply", "internal": i == 1})
	}
	src.Call(t, "PATCH", "/t/exported/api/v1/tickets/2", owner, map[string]any{"status": "resolved", "assignee_id": agent.ID})
	// Read models travel too: search documents store their vectors.
	src.StartEvents(t)
	apitest.Eventually(t, time.Minute, "tickets indexed", func() bool {
		return len(src.Call(t, "GET", "/t/exported/api/v1/search?q=body", owner, nil).Items()) == 3
	})
	var buf bytes.Buffer
	if err := archive.Export(ctx, src.Reg, "exported", &buf); err != nil {
		t.Fatal(err)
	}

	dst := apitest.New(t, nil)
	if _, err := archive.Import(ctx, dst.Reg, "imported", "", bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	token := dst.Login(t, "imported", "owner@exported.test") // same members and passwords
	for n := 1; n <= 3; n++ {
		a := src.Call(t, "GET", fmt.Sprintf("/t/exported/api/v1/tickets/%d", n), owner, nil).JSON
		b := dst.Call(t, "GET", fmt.Sprintf("/t/imported/api/v1/tickets/%d", n), token, nil).JSON
		for _, k := range []string{"id", "title", "body", "status", "assignee_id", "tags", "version", "created_at", "updated_at"} {
			if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
				t.Errorf("ticket %d %s: %v vs %v", n, k, a[k], b[k])
			}
		}
		ca := src.Call(t, "GET", fmt.Sprintf("/t/exported/api/v1/tickets/%d/events", n), owner, nil).Items()
		cb := dst.Call(t, "GET", fmt.Sprintf("/t/imported/api/v1/tickets/%d/events", n), token, nil).Items()
		if len(ca) != len(cb) || len(ca) == 0 {
			t.Errorf("ticket %d timeline: %d vs %d events", n, len(ca), len(cb))
		}
	}
	if hits := dst.Call(t, "GET", "/t/imported/api/v1/search?q=body", token, nil).Items(); len(hits) != 3 {
		t.Errorf("search after import: %d hits, want 3", len(hits))
	}
	// Numbering and identities continue after the imported rows.
	r := dst.Call(t, "POST", "/t/imported/api/v1/tickets", token, map[string]any{"title": "new", "body": "x"})
	if r.Status != 201 || r.JSON["number"] != float64(4) {
		t.Fatalf("first ticket after import: %s", r)
	}
	if _, err := archive.Import(ctx, dst.Reg, "broken", "", bytes.NewReader([]byte("not an archive"))); err == nil {
		t.Fatal("importing garbage succeeded")
	}
	if _, err := dst.Reg.Lookup(ctx, "broken"); !errors.Is(err, tenancy.ErrTenantNotFound) {
		t.Fatalf("a failed import left a tenant: %v", err)
	}
}

func TestSecondProcessFollowsMove(t *testing.T) {
	s := apitest.New(t, nil)
	sib := s.Sibling(t)
	ctx := context.Background()
	owner := s.Signup(t, "followed")
	dedicatedDatabase(t, s, "dedicated-followed")
	// The sibling caches the placement...
	if r := sib.Call(t, "POST", "/t/followed/api/v1/tickets", owner, map[string]any{"title": "before", "body": "x"}); r.Status != 201 {
		t.Fatal(r)
	}
	if _, err := move.New(s.Reg).Start(ctx, "followed", "dedicated-followed", move.Options{}); err != nil {
		t.Fatal(err)
	}
	// ...and follows the move without a restart.
	apitest.Eventually(t, 10*time.Second, "the sibling to see the new placement", func() bool {
		tn, err := sib.Reg.Resolve(ctx, "followed")
		return err == nil && tn.DatabaseID == "dedicated-followed"
	})
	r := sib.Call(t, "POST", "/t/followed/api/v1/tickets", owner, map[string]any{"title": "after", "body": "x"})
	if r.Status != 201 || r.JSON["number"] != float64(2) {
		t.Fatalf("write through the sibling after the move: %s", r)
	}
	if got := len(s.Call(t, "GET", "/t/followed/api/v1/tickets", owner, nil).Items()); got != 2 {
		t.Fatalf("primary sees %d tickets, want 2", got)
	}
}
