package tenancy

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// placementChannel is the NOTIFY channel on which any change of a tenant's
// status or placement is announced, so every process drops its cached copy.
const placementChannel = "patchdesk_tenants"

// cacheKey keeps slugs and tenant ids apart: a slug can never answer for
// an id, whatever it looks like.
type cacheKey struct {
	byID bool
	key  string
}

type cacheEntry struct {
	t       *Tenant
	expires time.Time
}

// placementCache is a bounded (slug or id) → tenant cache with a TTL
// backstop for a missed notification.
type placementCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[cacheKey]cacheEntry
}

func newPlacementCache(maxEntries int, ttl time.Duration) *placementCache {
	return &placementCache{max: maxEntries, ttl: ttl, entries: map[cacheKey]cacheEntry{}}
}

func (c *placementCache) get(k cacheKey) (*Tenant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.t, true
}

func (c *placementCache) put(k cacheKey, t *Tenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.evictLocked()
	}
	c.entries[k] = cacheEntry{t: t, expires: time.Now().Add(c.ttl)}
}

// evictLocked drops expired entries, then arbitrary ones until a quarter is free.
func (c *placementCache) evictLocked() {
	now := time.Now()
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max*3/4 {
			break
		}
		delete(c.entries, k)
	}
}

// forget drops a slug and, since the change may concern any of them, every
// entry cached by tenant id ("" drops everything).
func (c *placementCache) forget(slug string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slug == "" {
		clear(c.entries)
		return
	}
	delete(c.entries, cacheKey{key: slug})
	for k := range c.entries {
		if k.byID {
			delete(c.entries, k)
		}
	}
}

// Invalidate drops a slug from this process's cache ("" drops everything).
func (r *Registry) Invalidate(slug string) { r.cache.forget(slug) }

// Listen follows placement changes announced by any process until ctx ends.
// It reconnects after errors and clears the whole cache whenever it
// (re)connects, since notifications may have been missed meanwhile.
func (r *Registry) Listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.WarnContext(ctx, "placement listener stopped; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Registry) listenOnce(ctx context.Context) error {
	conn, err := r.control.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listener connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+placementChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The connection goes back to the pool afterwards: stop listening there.
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *")
	}()
	r.cache.forget("")
	// Idle pools are swept from here, between notifications.
	every := min(time.Minute, r.cfg.PoolIdle)
	swept := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, every)
		n, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			r.cache.forget(n.Payload)
		case ctx.Err() == nil && wctx.Err() != nil:
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
		if time.Since(swept) >= every {
			r.closeIdlePools()
			swept = time.Now()
		}
	}
}
