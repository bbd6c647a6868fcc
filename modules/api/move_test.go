package api_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// dedicatedDatabase registers a second database as a dedicated tier, its DSN
// kept in the environment (as an operator would with env:VAR).
func dedicatedDatabase(t *testing.T, s *apitest.Server, id string) {
	t.Helper()
	name := "PD_TEST_DSN_" + strings.ToUpper(rand.Text()[:10])
	os.Setenv(name, tenancytest.NewDatabase(t))
	if err := s.Reg.AddDatabase(context.Background(), id, tenancy.TierDedicated, "env:"+name); err != nil {
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

func (w *writer) run(t *testing.T, s *apitest.Server, slug, token string, stop <-chan struct{}) {
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
	owner := s.Signup(t, "movable")
	other := s.Signup(t, "bystander")
	dedicatedDatabase(t, s, "dedicated-movable")
	ctx := context.Background()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	mover, bystander := &writer{}, &writer{}
	wg.Go(func() { mover.run(t, s, "movable", owner, stop) })
	wg.Go(func() { bystander.run(t, s, "bystander", other, stop) })
	time.Sleep(300 * time.Millisecond)

	m, err := s.Reg.StartMove(ctx, "movable", "dedicated-movable", tenancy.MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := s.Reg.Lookup(ctx, "movable")
	if m.State != tenancy.MoveDone || tn.Tier != tenancy.TierDedicated || tn.DatabaseID != "dedicated-movable" {
		t.Fatalf("after moving out: move %+v, tenant %+v", m, tn)
	}
	t.Logf("shared → dedicated: freeze %d ms", *m.FreezeMS)
	time.Sleep(300 * time.Millisecond)
	back, err := s.Reg.StartMove(ctx, "movable", "main", tenancy.MoveOptions{})
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
	t.Logf("%d tickets written during two moves; longest gap between acknowledged writes %s", len(listed), mover.maxGap)
	if mover.maxGap > 2*time.Second || *m.FreezeMS > 2000 || *back.FreezeMS > 2000 {
		t.Fatalf("writes stalled: longest gap %s, freezes %d and %d ms", mover.maxGap, *m.FreezeMS, *back.FreezeMS)
	}
	if bystander.maxGap > 2*time.Second {
		t.Fatalf("the other tenant noticed: longest gap %s", bystander.maxGap)
	}
}
