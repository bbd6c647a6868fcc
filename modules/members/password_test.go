package members

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

var cheapArgon = ArgonParams{MemoryKiB: 1024, Time: 1, Threads: 1}

// TestHashSlotsBoundConcurrency: however many callers hash at once, at most
// the configured number hold a slot (and so argon2id's memory) together.
func TestHashSlotsBoundConcurrency(t *testing.T) {
	t.Parallel()
	h := newHasher(cheapArgon, 2, time.Minute)
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			release, err := h.acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if _, err := hashPassword("some password", cheapArgon); err != nil {
				t.Error(err)
			}
			inside.Add(-1)
			release()
		})
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || p > 2 {
		t.Fatalf("%d hashes ran at once with 2 slots", p)
	}
}

// TestLoginWaitsForAHashSlotThen503s: a login that finds every hashing slot
// taken waits HashWait, then is refused as unavailable with Retry-After;
// once a slot is free it is answered as usual.
func TestLoginWaitsForAHashSlotThen503s(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: tenancytest.NewDatabase(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	az, err := authz.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(Config{Argon: cheapArgon, MaxConcurrentHashes: 1, HashWait: 20 * time.Millisecond}, reg, reg, az)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Signup(ctx, SignupParams{Slug: "busy", Name: "B", AdminEmail: "o@busy.test", AdminName: "O", Password: "long enough password"})
	if err != nil {
		t.Fatal(err)
	}
	release, err := svc.hasher.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Login(ctx, res.Tenant, "o@busy.test", "wrong password!")
	var p *errs.Problem
	if !errors.Is(err, errs.ErrUnavailable) || !errors.As(err, &p) || p.RetryAfter < 1 {
		t.Fatalf("login with every hashing slot taken: %v, want 503 with Retry-After", err)
	}
	release()
	if _, err := svc.Login(ctx, res.Tenant, "o@busy.test", "wrong password!"); !errors.Is(err, errs.ErrUnauthenticated) {
		t.Fatalf("login with a free slot: %v, want 401", err)
	}
	if tok, err := svc.Login(ctx, res.Tenant, "O@Busy.test", "long enough password"); err != nil || tok == "" {
		t.Fatalf("login in another spelling of the address: %v", err)
	}
	if _, err := NewService(Config{SessionTTL: time.Hour, SessionMaxAge: time.Minute}, reg, reg, az); err == nil {
		t.Error("NewService accepted a maximum session age below the idle expiry")
	}
}
