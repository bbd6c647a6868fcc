package api_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/move"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// dedicatedDatabase registers a second database as a dedicated tier, its DSN
// stored encrypted with the test secret key.
func dedicatedDatabase(t testing.TB, s *apitest.Server, id string) {
	t.Helper()
	if err := s.Reg.AddDatabase(context.Background(), id, tenancy.TierDedicated, tenancytest.NewDatabase(t)); err != nil {
		t.Fatal(err)
	}
}

// writer creates tickets back to back until stopped, recording what the API acknowledged.
type writer struct {
	mu      sync.Mutex
	numbers []int
	fails   []string
	last    time.Time
	maxGap  time.Duration
}

func (w *writer) run(t testing.TB, s *apitest.Server, slug, token string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		r := s.Call(t, "POST", "/t/"+slug+"/api/v1/tickets", token, map[string]any{"title": fmt.Sprintf("w%d", i), "body": "x"})
		now := time.Now()
		w.mu.Lock()
		if r.Status == 201 {
			w.numbers = append(w.numbers, int(r.JSON["number"].(float64)))
			if !w.last.IsZero() {
				w.maxGap = max(w.maxGap, now.Sub(w.last))
			}
			w.last = now
		} else {
			w.fails = append(w.fails, r.String())
		}
		w.mu.Unlock()
	}
}

func TestMoveUnderLoad(t *testing.T) {
	s := apitest.New(t, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	dedicatedDatabase(t, s, "dedicated-movable")
	moveOutAndBack(t, s, "dedicated-movable")
}

// moveOutAndBack moves tenant "movable" to database target and back to
// "main" while it and a bystander keep creating tickets, then checks that no
// write failed, every acknowledged ticket is there once with gap-free
// numbers, and both moves are audited.
func moveOutAndBack(t *testing.T, s *apitest.Server, target string) {
	owner := s.Signup(t, "movable")
	other := s.Signup(t, "bystander")
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	mover, bystander := &writer{}, &writer{}
	wg.Go(func() { mover.run(t, s, "movable", owner, stop) })
	wg.Go(func() { bystander.run(t, s, "bystander", other, stop) })
	time.Sleep(300 * time.Millisecond)

	var progress []move.Progress
	var progressMu sync.Mutex
	m, err := move.New(s.Reg).Start(ctx, "movable", target, move.Options{Progress: func(p move.Progress) {
		progressMu.Lock()
		defer progressMu.Unlock()
		progress = append(progress, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, progress)
	tn, _ := s.Reg.Lookup(ctx, "movable")
	if m.State != move.Done || tn.Tier != tenancy.TierDedicated || tn.DatabaseID != target {
		t.Fatalf("after moving out: move %+v, tenant %+v", m, tn)
	}
	t.Logf("shared → dedicated: freeze %d ms", *m.FreezeMS)
	time.Sleep(300 * time.Millisecond)
	back, err := move.New(s.Reg).Start(ctx, "movable", "main", move.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dedicated → shared: freeze %d ms", *back.FreezeMS)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	tn, _ = s.Reg.Lookup(ctx, "movable")
	if tn.Tier != tenancy.TierShared || tn.DatabaseID != "main" {
		t.Fatalf("after moving back: %+v", tn)
	}
	if len(mover.fails) > 0 || len(bystander.fails) > 0 {
		for _, l := range strings.Split(s.Logs.String(), "\n") {
			if strings.Contains(l, "ERROR") {
				t.Log(l)
				break
			}
		}
		t.Fatalf("%d and %d writes failed during the moves: %.300v / %.300v", len(mover.fails), len(bystander.fails), mover.fails, bystander.fails)
	}
	// Every acknowledged write is there, once.
	var listed []int
	cursor := ""
	for {
		r := s.Call(t, "GET", "/t/movable/api/v1/tickets?limit=100&cursor="+cursor, owner, nil)
		for _, it := range r.Items() {
			listed = append(listed, int(it["number"].(float64)))
		}
		c, _ := r.JSON["next_cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	slices.Sort(listed)
	slices.Sort(mover.numbers)
	if !slices.Equal(listed, mover.numbers) {
		t.Fatalf("acknowledged %d tickets, listed %d", len(mover.numbers), len(listed))
	}
	for i, n := range listed {
		if n != i+1 {
			t.Fatalf("ticket numbers are not 1..%d: %v", len(listed), listed[max(0, i-3):i+1])
		}
	}
	if len(bystander.numbers) == 0 {
		t.Fatal("the other tenant wrote nothing during the moves")
	}
	// Both moves are audited in the control plane.
	conn := s.Admin(t)
	var audited int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM control.tenant_audit WHERE tenant_id = $1 AND action = 'tenant.moved'`,
		tn.ID).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if audited != 2 {
		t.Fatalf("%d tenant.moved audit records, want 2", audited)
	}
	// Timings are for BenchmarkMoveFreeze, which reports them; on a loaded
	// machine a unit test only logs them.
	t.Logf("%d tickets written during two moves; longest gap between acknowledged writes %s (other tenant %s); freezes %d and %d ms",
		len(listed), mover.maxGap, bystander.maxGap, *m.FreezeMS, *back.FreezeMS)
}

// TestMoveCrashAtEachStep fails the move before each step, as a crash there
// would, then resumes it (or aborts it): the tenant always ends consistent
// and served from exactly one place.
func TestMoveCrashAtEachStep(t *testing.T) {
	s := apitest.New(t, func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	dedicatedDatabase(t, s, "dedicated-crashy")
	crashAtEachStep(t, s, "dedicated-crashy")
}

// crashAtEachStep moves tenant "crashy" between "main" and dedicated, failing
// each step once and then resuming or aborting the move.
func crashAtEachStep(t *testing.T, s *apitest.Server, dedicated string) {
	owner := s.Signup(t, "crashy")
	ctx := context.Background()
	created := 0
	write := func() {
		t.Helper()
		if r := s.Call(t, "POST", "/t/crashy/api/v1/tickets", owner, map[string]any{"title": "x", "body": "y"}); r.Status != 201 {
			t.Fatalf("write: %s", r)
		}
		created++
	}
	count := func() int {
		t.Helper()
		r := s.Call(t, "GET", "/t/crashy/api/v1/tickets?limit=100", owner, nil)
		if r.Status != 200 {
			t.Fatalf("read: %s", r)
		}
		return len(r.Items())
	}
	to := map[bool]string{true: dedicated, false: "main"}
	out := true
	// Besides before each step, crashes inside the switch step: with the
	// change logs and baselines in place, and inside the freeze.
	for i, step := range []string{move.Created, move.TargetReady, move.Replicating, move.Synced, move.FaultBaselined, move.FaultFrozen, move.Switched} {
		state := step
		if step == move.FaultBaselined || step == move.FaultFrozen {
			state = move.Synced
		}
		for _, resume := range []bool{true, false} {
			write()
			crash := func(at string) error {
				if at == step {
					return fmt.Errorf("injected crash before %s", at)
				}
				return nil
			}
			m, err := move.New(s.Reg).Start(ctx, "crashy", to[out], move.Options{Fault: crash})
			if err == nil || m == nil || m.State != state {
				t.Fatalf("step %d (%s): want a failure there, got %v in %+v", i, step, err, m)
			}
			write() // the tenant keeps serving while the move is stuck
			before, _ := s.Reg.Lookup(ctx, "crashy")
			if resume || step == move.Switched {
				if m, err = move.New(s.Reg).Resume(ctx, m.ID, move.Options{}); err != nil || m.State != move.Done {
					t.Fatalf("resume after a crash before %s: %v %+v", step, err, m)
				}
				out = !out
			} else {
				if m, err = move.New(s.Reg).Abort(ctx, m.ID); err != nil || m.State != move.Aborted {
					t.Fatalf("abort after a crash before %s: %v %+v", step, err, m)
				}
			}
			after, _ := s.Reg.Lookup(ctx, "crashy")
			want := before.DatabaseID
			if m.State == move.Done {
				want = to[!out]
				if step == move.Switched {
					want = before.DatabaseID // the switch had happened before the crash
				}
			}
			if after.DatabaseID != want {
				t.Fatalf("after %s at %s: served from %s, want %s", m.State, step, after.DatabaseID, want)
			}
			write()
			if got := count(); got != created {
				t.Fatalf("after %s at %s: %d tickets, want %d", m.State, step, got, created)
			}
		}
	}
	// A switched move cannot be aborted.
	m, err := move.New(s.Reg).Start(ctx, "crashy", to[out], move.Options{Fault: func(at string) error {
		if at == move.Switched {
			return fmt.Errorf("stop after the switch")
		}
		return nil
	}})
	if err == nil {
		t.Fatal("expected the injected failure")
	}
	if _, err := move.New(s.Reg).Abort(ctx, m.ID); !errors.Is(err, move.ErrFinished) {
		t.Fatalf("aborting a switched move: %v", err)
	}
	if _, err := move.New(s.Reg).Resume(ctx, m.ID, move.Options{}); err != nil {
		t.Fatal(err)
	}
}

// checkProgress checks what a move reported to Options.Progress: every
// phase in order, a row total during the initial copy, and the replication
// lag once the slot exists.
func checkProgress(t *testing.T, progress []move.Progress) {
	t.Helper()
	var phases []string
	var rowsTotal int64
	var lag bool
	for _, p := range progress {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		rowsTotal = max(rowsTotal, p.RowsTotal)
		lag = lag || p.LagBytes != nil
	}
	want := []string{"prepare target", "start replication", "initial copy", "switch", "verify baseline", "freeze", "clean up"}
	var seen []string
	for _, p := range phases {
		if slices.Contains(want, p) {
			seen = append(seen, p)
		}
	}
	if !slices.Equal(seen, want) || !lag {
		t.Fatalf("progress: phases %v (want %v), lag reported %t", phases, want, lag)
	}
	t.Logf("progress: %d reports, phases %v, largest row total %d", len(progress), phases, rowsTotal)
}
