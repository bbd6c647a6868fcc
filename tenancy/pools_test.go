package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// envOf is a ResolveEnv over a fixed map: tests never touch the process environment.
func envOf(vars map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("%s is not set", name)
		}
		return v, nil
	}
}

func openTestRegistry(t *testing.T, cfg tenancy.Config) *tenancy.Registry {
	t.Helper()
	cfg.DatabaseURL = tenancytest.NewDatabase(t)
	cfg.MaxConns = 4
	r, err := tenancy.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

type pingArgs struct{ N int }

func (pingArgs) Kind() string { return "tenancy_test_ping" }

type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	done chan int
}

func (w *pingWorker) Work(_ context.Context, job *river.Job[pingArgs]) error {
	w.done <- job.Args.N
	return nil
}

// TestJobsSurviveIdleSweep: the idle sweep closes a dedicated database's
// transaction pool, and River, which holds a driver of that database for the
// life of the process, keeps inserting and working jobs.
func TestJobsSurviveIdleSweep(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := openTestRegistry(t, tenancy.Config{
		PoolIdle:   100 * time.Millisecond,
		ResolveEnv: envOf(map[string]string{"DEDICATED_URL": tenancytest.NewDatabase(t)}),
	})
	if err := reg.AddDatabase(ctx, "dedicated", tenancy.TierDedicated, "env:DEDICATED_URL"); err != nil {
		t.Fatal(err)
	}
	tn, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: "idler", Name: "idler", DatabaseID: "dedicated"})
	if err != nil {
		t.Fatal(err)
	}
	driver, err := reg.JobDriver(ctx, "dedicated")
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	w := &pingWorker{done: make(chan int, 4)}
	river.AddWorker(workers, w)
	client, err := river.NewClient(driver, &river.Config{
		Schema:            "infra",
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers,
		FetchPollInterval: 100 * time.Millisecond,
		TestOnly:          true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(context.WithoutCancel(ctx)) }()
	insertAndWork := func(n int) {
		t.Helper()
		if _, err := client.Insert(ctx, pingArgs{N: n}, nil); err != nil {
			t.Fatalf("insert job %d: %v", n, err)
		}
		select {
		case got := <-w.done:
			if got != n {
				t.Fatalf("worked job %d, want %d", got, n)
			}
		case <-ctx.Done():
			t.Fatalf("job %d was not worked", n)
		}
	}
	insertAndWork(1)

	// The real sweep, run by the placement listener every PoolIdle.
	lctx, stopListen := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { reg.Listen(lctx) })
	for reg.HasTxPool("dedicated") {
		if ctx.Err() != nil {
			t.Fatal("the idle sweep never closed the dedicated transaction pool")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopListen()
	wg.Wait()

	insertAndWork(2)
	// Transactions reopen the swept pool.
	err = reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		_, err := tx.Exec(ctx, `SELECT count(*) FROM members`)
		return err
	})
	if err != nil {
		t.Fatalf("tenant transaction after the sweep: %v", err)
	}
	insertAndWork(3)
}

// TestLeasedPoolIsNotIdled: a pool held by a caller (a long move step, a
// transaction) outlives the idle time without being closed under it.
func TestLeasedPoolIsNotIdled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := openTestRegistry(t, tenancy.Config{
		PoolIdle:   time.Millisecond,
		ResolveEnv: envOf(map[string]string{"DEDICATED_URL": tenancytest.NewDatabase(t)}),
	})
	if err := reg.AddDatabase(ctx, "dedicated", tenancy.TierDedicated, "env:DEDICATED_URL"); err != nil {
		t.Fatal(err)
	}
	ping, release, err := reg.LeasePool(ctx, "dedicated")
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.SweepIdleAt(time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("the sweep closed %d leased pools", n)
	}
	if err := ping(); err != nil {
		t.Fatalf("leased pool after the sweep: %v", err)
	}
	release()
	if n := reg.SweepIdleAt(time.Now().Add(time.Hour)); n != 1 {
		t.Fatalf("the sweep closed %d released pools, want 1", n)
	}
}

// blackhole is a TCP listener that accepts connections and never answers,
// as a database behind a dead network path would.
func blackhole(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// TestUnreachableDatabaseDoesNotStallOthers: while the pool of a dedicated
// database that never answers is being opened (once, however many callers
// wait for it), shared-tier tenants keep being served.
func TestUnreachableDatabaseDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	addr, accepted := blackhole(t)
	reg := openTestRegistry(t, tenancy.Config{
		ResolveEnv: envOf(map[string]string{"DEAD_URL": "postgres://nobody@" + addr + "/nothing?sslmode=disable"}),
	})
	ctx := context.Background()
	if err := reg.ControlExec(ctx, `INSERT INTO control.databases (id, kind, dsn_ref) VALUES ('dead', 'dedicated', 'env:DEAD_URL')`); err != nil {
		t.Fatal(err)
	}
	shared, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: "alive", Name: "alive"})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	schema, role := tenancy.SchemaAndRole(id)
	ghost := &tenancy.Tenant{ID: id, Slug: "ghost", Tier: tenancy.TierDedicated, Status: tenancy.StatusActive, DatabaseID: "dead", Schema: schema, Role: role}

	ghostCtx, cancelGhosts := context.WithCancel(ctx)
	defer cancelGhosts()
	const waiters = 3
	ghostErrs := make(chan error, waiters)
	for range waiters {
		go func() {
			ghostErrs <- reg.Tx(ghostCtx, ghost, func(context.Context, tenancy.Tx) error { return nil })
		}()
	}
	deadline, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for accepted.Load() == 0 { // the open is in flight: a connection hangs in the black hole
		if deadline.Err() != nil {
			t.Fatal("nobody tried to reach the unreachable database")
		}
		time.Sleep(10 * time.Millisecond)
	}

	for i := range 5 {
		done := make(chan error, 1)
		go func() {
			done <- reg.Tx(deadline, shared, func(ctx context.Context, tx tenancy.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO members (email, name, role) VALUES ($1, 'x', 'agent')`, fmt.Sprintf("m%d@alive.test", i))
				return err
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shared-tier transaction %d: %v", i, err)
			}
		case <-deadline.Done():
			t.Fatalf("shared-tier transaction %d stalled behind the unreachable database", i)
		}
	}
	if _, err := reg.Provision(deadline, tenancy.ProvisionParams{Slug: "newcomer", Name: "newcomer"}); err != nil {
		t.Fatalf("provisioning on the shared tier: %v", err)
	}
	select {
	case err := <-ghostErrs:
		t.Fatalf("a transaction on the unreachable database returned while its open should hang: %v", err)
	default:
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections to the unreachable database for %d waiting transactions, want one open", n, waiters)
	}
	cancelGhosts()
	for range waiters {
		select {
		case err := <-ghostErrs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("waiting transaction ended with %v, want its context's cancellation", err)
			}
		case <-deadline.Done():
			t.Fatal("transactions waiting on the unreachable database ignore their context")
		}
	}
}

// TestCacheKeySpaces: a tenant cached by id is not served for the slug
// "id:<uuid>" (as /t/id:<uuid>/… would ask), and the other way round.
func TestCacheKeySpaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := openTestRegistry(t, tenancy.Config{})
	tn, err := reg.Provision(ctx, tenancy.ProvisionParams{Slug: "keyed", Name: "keyed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ByID(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Resolve(ctx, "id:"+tn.ID.String()); !errors.Is(err, tenancy.ErrTenantNotFound) {
		t.Fatalf("slug id:<uuid> resolved to %+v (%v), want not found", got, err)
	}
	if _, err := reg.Resolve(ctx, "keyed"); err != nil {
		t.Fatal(err)
	}
	// And the other way round: a slug cached does not fill the id key space.
	reg.Invalidate("")
	if _, err := reg.Resolve(ctx, "keyed"); err != nil {
		t.Fatal(err)
	}
	if reg.CachedByID(tn.ID) {
		t.Fatal("resolving a slug filled the id key space")
	}
}
