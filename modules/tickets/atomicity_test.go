package tickets

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

type bundle struct {
	svc    *Service
	tenant *tenancy.Tenant
	owner  authz.Subject
	admin  *pgx.Conn
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)
	reg, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	az, err := authz.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msvc, err := members.NewService(members.Config{Argon: members.ArgonParams{MemoryKiB: 1024, Time: 1, Threads: 1}}, reg, reg, az)
	if err != nil {
		t.Fatal(err)
	}
	res, err := msvc.Signup(ctx, members.SignupParams{Slug: "atomic", Name: "A", AdminEmail: "o@atomic.test", AdminName: "O", Password: "long enough password"})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := msvc.Authenticate(ctx, res.Tenant, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(Config{}, reg, az, msvc, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return &bundle{svc: svc, tenant: res.Tenant, owner: owner, admin: admin}
}

// counts returns (tickets, events, outbox rows, audit rows) as seen by the database owner.
func (b *bundle) counts(t *testing.T) [4]int {
	t.Helper()
	var c [4]int
	s := b.tenant.Schema
	err := b.admin.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM `+s+`.tickets), (SELECT count(*) FROM `+s+`.ticket_events),
		(SELECT count(*) FROM infra.outbox WHERE tenant_id = $1), (SELECT count(*) FROM `+s+`.audit_log)`, b.tenant.ID).
		Scan(&c[0], &c[1], &c[2], &c[3])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var errInjected = errors.New("injected failure")

func TestCreateIsAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.svc.fault = func(stage string) error {
		if stage == "after-insert" {
			return errInjected
		}
		return nil
	}
	if _, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "doomed", Body: "x"}); !errors.Is(err, errInjected) {
		t.Fatalf("want injected failure, got %v", err)
	}
	if got := b.counts(t); got != [4]int{} {
		t.Fatalf("failed create left rows (tickets, events, outbox, audit) = %v", got)
	}
	b.svc.fault = nil
	tk, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "lives", Body: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if tk.Number != 1 {
		t.Fatalf("the failed create consumed a number: got %d", tk.Number)
	}
	if got := b.counts(t); got != [4]int{1, 1, 1, 0} {
		t.Fatalf("after one create (tickets, events, outbox, audit) = %v", got)
	}
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	tk, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "stable", Body: "x"})
	if err != nil {
		t.Fatal(err)
	}
	before := b.counts(t)
	b.svc.fault = func(stage string) error {
		if stage == "after-commit-writes" {
			return errInjected
		}
		return nil
	}
	closed := StatusClosed
	_, err = b.svc.Update(ctx, b.owner, b.tenant, tk.Number, UpdateParams{Status: &closed, Title: ptr("changed")})
	if !errors.Is(err, errInjected) {
		t.Fatalf("want injected failure, got %v", err)
	}
	if got := b.counts(t); got != before {
		t.Fatalf("failed update wrote rows: before %v after %v", before, got)
	}
	b.svc.fault = nil
	got, err := b.svc.Get(ctx, b.owner, b.tenant, tk.Number)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "stable" || got.Status != StatusOpen || got.Version != tk.Version {
		t.Fatalf("ticket changed by a failed update: %+v", got)
	}
	// A successful delete writes state, event, outbox and audit together.
	if err := b.svc.Delete(ctx, b.owner, b.tenant, tk.Number); err != nil {
		t.Fatal(err)
	}
	if got := b.counts(t); got != [4]int{1, 2, 2, 1} {
		t.Fatalf("after delete (tickets, events, outbox, audit) = %v", got)
	}
}

func TestTenantRoleCannotReadOutboxOrRewriteHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "x", Body: "y"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM infra.outbox`,
		`UPDATE ticket_events SET type = 'deleted'`,
		`DELETE FROM audit_log`,
	} {
		err := b.svc.db.Tx(ctx, b.tenant, func(ctx context.Context, tx tenancy.Tx) error {
			_, err := tx.Exec(ctx, q)
			return err
		})
		if err == nil {
			t.Errorf("tenant scope allowed %q", q)
		}
	}
}

func ptr[T any](v T) *T { return &v }
