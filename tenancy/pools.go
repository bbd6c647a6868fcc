package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"
)

// errRegistryClosed refuses pools after Close.
var errRegistryClosed = errors.New("registry is closed")

// poolSet owns the pools of the tenant databases of one process. Who holds a
// pool holds a lease, and only a pool nobody holds may be idled, so a pool is
// never closed under its user. Opening a pool (control lookup, connect, ping,
// infra migrations) is network I/O: it runs outside the mutex, once per key at
// a time (singleflight), so a slow or unreachable database only stalls the
// callers that need it.
type poolSet struct {
	idle time.Duration
	// open opens the pool of a key; shared reports a pool the set must not
	// close (the control pool).
	open func(ctx context.Context, key string) (p *pgxpool.Pool, shared bool, err error)
	// openTimeout bounds an open, which outlives the caller that started it.
	openTimeout time.Duration
	// closing is closed when the registry closes, cancelling opens in flight.
	closing <-chan struct{}

	flight singleflight.Group

	mu      sync.Mutex
	closed  bool
	entries map[string]*poolEntry
}

type poolEntry struct {
	pool     *pgxpool.Pool
	shared   bool // the control pool: closed by the registry, never idled
	leases   int
	lastUsed time.Time
	retired  bool // out of the map: closed when the last lease ends
}

// acquire returns the pool of key with a lease on it; release must be
// called when the caller is done with the pool (not necessarily with
// connections it hijacked).
func (s *poolSet) acquire(ctx context.Context, key string) (*pgxpool.Pool, func(), error) {
	for range 3 {
		if p, release, ok, err := s.lease(key); ok || err != nil {
			return p, release, err
		}
		if err := s.openShared(ctx, key); err != nil {
			return nil, nil, err
		}
	}
	// Opened, then idled or replaced before this caller could lease it three
	// times in a row: something is churning the pool.
	return nil, nil, fmt.Errorf("database %q: pool was closed while opening", key)
}

// lease takes a lease on an open pool, if there is one.
func (s *poolSet) lease(key string) (*pgxpool.Pool, func(), bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false, errRegistryClosed
	}
	e, ok := s.entries[key]
	if !ok {
		return nil, nil, false, nil
	}
	e.leases++
	e.lastUsed = time.Now()
	var once sync.Once
	return e.pool, func() { once.Do(func() { s.release(e) }) }, true, nil
}

func (s *poolSet) release(e *poolEntry) {
	s.mu.Lock()
	e.leases--
	e.lastUsed = time.Now()
	closeNow := e.retired && e.leases == 0 && !e.shared
	s.mu.Unlock()
	if closeNow {
		e.pool.Close()
	}
}

// openShared opens the pool of key, or waits for the open another caller
// started; the caller's ctx bounds only its own wait.
func (s *poolSet) openShared(ctx context.Context, key string) error {
	ch := s.flight.DoChan(key, func() (any, error) {
		// Detached from the first caller, whose wait may end before the
		// open; bounded by the timeout and the registry's life instead.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.openTimeout)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-octx.Done():
			}
		}()
		p, shared, err := s.open(octx, key)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		_, exists := s.entries[key]
		closed := s.closed
		if !closed && !exists {
			s.entries[key] = &poolEntry{pool: p, shared: shared, lastUsed: time.Now()}
		}
		s.mu.Unlock()
		if (closed || exists) && !shared {
			p.Close() // not under the mutex: Close waits for connections
		}
		if closed {
			return nil, errRegistryClosed
		}
		return nil, nil
	})
	select {
	case <-ctx.Done():
		return fmt.Errorf("open database %q: %w", key, context.Cause(ctx))
	case res := <-ch:
		return res.Err
	}
}

// sweep closes the pools nobody holds that were unused for the idle time
// (never, when the idle time is not positive). It returns how many it closed.
func (s *poolSet) sweep(now time.Time) int {
	if s.idle <= 0 {
		return 0
	}
	s.mu.Lock()
	var idle []*pgxpool.Pool
	for key, e := range s.entries {
		if !e.shared && e.leases == 0 && now.Sub(e.lastUsed) > s.idle {
			idle = append(idle, e.pool)
			delete(s.entries, key)
		}
	}
	s.mu.Unlock()
	for _, p := range idle {
		p.Close()
	}
	return len(idle)
}

// replace drops the pool of key (its DSN changed): the next acquire opens a
// new one, and the old one closes when its last lease ends.
func (s *poolSet) replace(key string) {
	s.mu.Lock()
	e, ok := s.entries[key]
	if ok {
		delete(s.entries, key)
		e.retired = true
	}
	closeNow := ok && e.leases == 0 && !e.shared
	s.mu.Unlock()
	s.flight.Forget(key)
	if closeNow {
		e.pool.Close()
	}
}

// has reports whether key has an open pool (tests).
func (s *poolSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[key]
	return ok
}

// close closes every pool the set opened; later acquires fail.
func (s *poolSet) close() {
	s.mu.Lock()
	s.closed = true
	var all []*pgxpool.Pool
	for key, e := range s.entries {
		if !e.shared {
			all = append(all, e.pool)
		}
		delete(s.entries, key)
	}
	s.mu.Unlock()
	for _, p := range all {
		p.Close()
	}
}
