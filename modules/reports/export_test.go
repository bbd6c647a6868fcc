package reports_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/reports"
	"github.com/patchdesk/patchdesk/tenancy"
)

// TestExportWithoutJobIsSwept commits export rows as a process that died
// between the commit and the job insert leaves them: looking at one, or
// requesting another export, queues them, and they complete.
func TestExportWithoutJobIsSwept(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	owner := s.Signup(t, "swept")
	if r := s.Call(t, "POST", "/t/swept/api/v1/tickets", owner, map[string]any{"title": "one", "body": "x"}); r.Status != 201 {
		t.Fatal(r)
	}
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "swept")
	if err != nil {
		t.Fatal(err)
	}
	orphan := func() uuid.UUID {
		var id uuid.UUID
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `INSERT INTO report_exports (created_at) VALUES (now() - interval '10 minutes') RETURNING id`).Scan(&id)
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	status := func(id uuid.UUID) string {
		var st string
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT status FROM report_exports WHERE id = $1`, id).Scan(&st)
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	looked, other := orphan(), orphan()
	// Looking at a stale pending export queues it.
	path := "/t/swept/api/v1/reports/exports/" + looked.String()
	apitest.Eventually(t, 30*time.Second, "the looked-at export to complete", func() bool {
		r := s.Call(t, "GET", path, owner, nil)
		return strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv")
	})
	// Requesting an export queues the other stale ones of the tenant.
	if r := s.Call(t, "POST", "/t/swept/api/v1/reports/exports", owner, nil); r.Status != 202 {
		t.Fatal(r)
	}
	apitest.Eventually(t, 30*time.Second, "the other export to complete", func() bool { return status(other) == "done" })
	// A fresh pending export is left to its own job.
	if n, err := s.App.Reports.SweepExports(ctx, tn); err != nil || n != 0 {
		t.Errorf("sweep with nothing stale: %d %v", n, err)
	}
}

// TestExportFailsOnDirectoryErrors breaks the members table under a real
// database: an assignee whose address cannot be read is the export's error,
// named as such (retried, then failed). The old code ignored it: here the
// aborted transaction then failed at commit with an unrelated message; an
// error leaving the transaction usable gave an empty cell in a "done" file.
func TestExportFailsOnDirectoryErrors(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.StartEvents(t)
	owner := s.Signup(t, "brokendir")
	agent := s.AddMember(t, "brokendir", owner, "agent")
	if r := s.Call(t, "POST", "/t/brokendir/api/v1/tickets", owner, map[string]any{"title": "one", "body": "x", "assignee_id": agent.ID}); r.Status != 201 {
		t.Fatal(r)
	}
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "brokendir")
	if err != nil {
		t.Fatal(err)
	}
	apitest.Eventually(t, 30*time.Second, "reports to see the ticket", func() bool {
		var n int
		_ = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM report_tickets`).Scan(&n)
		})
		return n == 1
	})
	admin := s.Admin(t)
	if _, err := admin.Exec(ctx, `ALTER TABLE `+pgx.Identifier{tn.Schema, "members"}.Sanitize()+` RENAME COLUMN email TO email_renamed`); err != nil {
		t.Fatal(err)
	}
	ownerID := uuid.Nil
	_ = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		return tx.QueryRow(ctx, `SELECT id FROM members WHERE role = 'owner'`).Scan(&ownerID)
	})
	id, err := s.App.Reports.RequestExport(ctx, authz.Subject{MemberID: ownerID, Role: authz.RoleOwner}, tn)
	if err != nil {
		t.Fatal(err)
	}
	var jobErrors string
	apitest.Eventually(t, 60*time.Second, "the export job to be attempted", func() bool {
		err := admin.QueryRow(ctx, `SELECT coalesce(string_agg(e::text, ' '), '') FROM infra.river_job, unnest(errors) e
			WHERE kind = $1 AND args->>'export_id' = $2`, "patchdesk.report-export", id.String()).Scan(&jobErrors)
		if err != nil {
			t.Fatal(err)
		}
		var st string
		_ = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT status FROM report_exports WHERE id = $1`, id).Scan(&st)
		})
		if st == "done" {
			t.Fatal("export done although the assignee's address could not be read")
		}
		return jobErrors != ""
	})
	if !strings.Contains(jobErrors, "assignee contact") {
		t.Errorf("job error: %s", jobErrors)
	}
}

// TestFirstResponseFailsOnDirectoryErrors: a staff reply whose author cannot
// be read (a real database error, not "no such member") fails the event, to
// be retried and dead-lettered, instead of silently skipping the first
// response time.
func TestFirstResponseFailsOnDirectoryErrors(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	ev := s.StartEvents(t)
	owner := s.Signup(t, "brokenauthor")
	agent := s.AddMember(t, "brokenauthor", owner, "agent")
	if r := s.Call(t, "POST", "/t/brokenauthor/api/v1/tickets", owner, map[string]any{"title": "one", "body": "x"}); r.Status != 201 {
		t.Fatal(r)
	}
	ev.StopConsumer(reports.ConsumerGroup)
	if r := s.Call(t, "POST", "/t/brokenauthor/api/v1/tickets/1/comments", agent.Token, map[string]any{"body": "staff reply"}); r.Status != 201 {
		t.Fatal(r)
	}
	ctx := context.Background()
	tn, err := s.Reg.Resolve(ctx, "brokenauthor")
	if err != nil {
		t.Fatal(err)
	}
	admin := s.Admin(t)
	if _, err := admin.Exec(ctx, `ALTER TABLE `+pgx.Identifier{tn.Schema, "members"}.Sanitize()+` RENAME COLUMN role TO role_renamed`); err != nil {
		t.Fatal(err)
	}
	ev.StartConsumer(reports.ConsumerGroup)
	apitest.Eventually(t, 60*time.Second, "the reply's event to fail on the author lookup", func() bool {
		return strings.Contains(s.Logs.String(), "first response author")
	})
}
