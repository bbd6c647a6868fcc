package tickets

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

type bundle struct {
	svc    *Service
	faults *faultyRunner
	tenant *tenancy.Tenant
	owner  authz.Subject
	admin  *pgx.Conn
}

// faultyRunner is the test seam for atomicity: it wraps the real TxRunner
// and fails a transaction at a chosen point, or runs its callback twice as
// tenancy does when it retries, so nothing in the shipped service needs a
// fault hook.
type faultyRunner struct {
	inner tenancy.TxRunner
	mu    sync.Mutex
	// failOn, when it matches a statement, fails that statement before it
	// reaches the database, and with it the transaction.
	failOn func(sql string) bool
	// failAtEnd fails the transaction after every write of the callback succeeded.
	failAtEnd bool
	// retryOnce runs the callback a second time in a new transaction after
	// rolling the first back, as a Tx retried after a tier move does.
	retryOnce bool
}

func (f *faultyRunner) set(fn func(*faultyRunner)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultyRunner) snapshot() (func(string) bool, bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failOn, f.failAtEnd, f.retryOnce
}

var errRetry = errors.New("first attempt rolled back to be retried")

func (f *faultyRunner) Tx(ctx context.Context, t *tenancy.Tenant, fn func(ctx context.Context, tx tenancy.Tx) error) error {
	failOn, failAtEnd, retryOnce := f.snapshot()
	run := func(ctx context.Context, tx tenancy.Tx) error {
		if err := fn(ctx, faultyTx{Tx: tx, failOn: failOn}); err != nil {
			return err
		}
		if failAtEnd {
			return errInjected
		}
		return nil
	}
	if retryOnce {
		err := f.inner.Tx(ctx, t, func(ctx context.Context, tx tenancy.Tx) error {
			if err := run(ctx, tx); err != nil {
				return err
			}
			return errRetry
		})
		if !errors.Is(err, errRetry) {
			return err
		}
	}
	return f.inner.Tx(ctx, t, run)
}

type faultyTx struct {
	tenancy.Tx
	failOn func(string) bool
}

func (t faultyTx) fails(sql string) bool { return t.failOn != nil && t.failOn(sql) }

func (t faultyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.fails(sql) {
		return pgconn.CommandTag{}, errInjected
	}
	return t.Tx.Exec(ctx, sql, args...)
}

func (t faultyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.fails(sql) {
		return nil, errInjected
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t faultyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.fails(sql) {
		return errRow{}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

type errRow struct{}

func (errRow) Scan(...any) error { return errInjected }

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
	faults := &faultyRunner{inner: reg}
	svc, err := NewService(Config{}, faults, az, msvc, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return &bundle{svc: svc, faults: faults, tenant: res.Tenant, owner: owner, admin: admin}
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
	// Fail the timeline insert, which follows the ticket's own insert.
	b.faults.set(func(f *faultyRunner) {
		f.failOn = func(sql string) bool { return strings.Contains(sql, "INSERT INTO ticket_events") }
	})
	if _, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "doomed", Body: "x"}); !errors.Is(err, errInjected) {
		t.Fatalf("want injected failure, got %v", err)
	}
	if got := b.counts(t); got != [4]int{} {
		t.Fatalf("failed create left rows (tickets, events, outbox, audit) = %v", got)
	}
	b.faults.set(func(f *faultyRunner) { f.failOn = nil })
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
	// Fail after every write of the change (state, events, outbox, audit) succeeded.
	b.faults.set(func(f *faultyRunner) { f.failAtEnd = true })
	closed := StatusClosed
	_, err = b.svc.Update(ctx, b.owner, b.tenant, tk.Number, UpdateParams{Status: &closed, Title: ptr("changed")})
	if !errors.Is(err, errInjected) {
		t.Fatalf("want injected failure, got %v", err)
	}
	if got := b.counts(t); got != before {
		t.Fatalf("failed update wrote rows: before %v after %v", before, got)
	}
	b.faults.set(func(f *faultyRunner) { f.failAtEnd = false })
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

// TestMetricsCountCommitsNotAttempts runs every write's transaction callback
// twice (the first attempt rolled back), as tenancy does when it retries a
// Tx after a tier move: the counters must count each committed change once.
func TestMetricsCountCommitsNotAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.faults.set(func(f *faultyRunner) { f.retryOnce = true })
	tk, err := b.svc.Create(ctx, b.owner, b.tenant, CreateParams{Title: "twice", Body: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Update(ctx, b.owner, b.tenant, tk.Number, UpdateParams{Title: ptr("renamed"), Priority: ptr("high")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.AddComment(ctx, b.owner, b.tenant, tk.Number, CommentParams{Body: "once"}); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Delete(ctx, b.owner, b.tenant, tk.Number); err != nil {
		t.Fatal(err)
	}
	// One create, then 2 + 1 + 1 field/comment/delete events: 5 outbox rows.
	if got := b.counts(t); got != [4]int{1, 5, 5, 1} {
		t.Fatalf("retried writes left (tickets, events, outbox, audit) = %v, want each once", got)
	}
	m := b.svc.metrics
	for name, c := range map[string]prometheus.Collector{
		"created": m.created.WithLabelValues(b.tenant.Tier), "updated": m.updated.WithLabelValues(b.tenant.Tier), "outbox": m.outboxWritten,
	} {
		want := map[string]float64{"created": 1, "updated": 2, "outbox": 5}[name]
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%s counter = %v after retried transactions, want %v", name, got, want)
		}
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
