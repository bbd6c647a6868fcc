// Package ratelimit keeps token-bucket limiters per key (client IP, token,
// tenant) with a bounded memory footprint.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter rate-limits independent keys.
type Limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	maxKeys int
	keys    map[string]*rate.Limiter
}

// New allows perMinute events per key per minute with the given burst,
// tracking at most maxKeys keys (beyond that the oldest state is forgotten,
// which can only let a client through early, never block it wrongly).
func New(perMinute float64, burst, maxKeys int) *Limiter {
	return &Limiter{limit: rate.Limit(perMinute / 60), burst: burst, maxKeys: maxKeys, keys: map[string]*rate.Limiter{}}
}

// Allow reports whether key may proceed now, using one event if so, and if
// not, how many whole seconds until it may (for Retry-After).
func (l *Limiter) Allow(key string) (bool, int) {
	l.mu.Lock()
	lim, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= l.maxKeys {
			clear(l.keys)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.keys[key] = lim
	}
	l.mu.Unlock()
	r := lim.Reserve()
	delay := r.Delay()
	if delay == 0 {
		return true, 0
	}
	r.Cancel()
	return false, retrySeconds(delay)
}

// Exhausted reports whether key has no event left now, without using one,
// and if so how many whole seconds until it has. It lets a caller refuse
// work up front and spend events only on outcomes (e.g. failed sign-ins).
func (l *Limiter) Exhausted(key string) (bool, int) {
	l.mu.Lock()
	lim, ok := l.keys[key]
	l.mu.Unlock()
	if !ok {
		return false, 0
	}
	tokens := lim.Tokens()
	if tokens >= 1 {
		return false, 0
	}
	return true, retrySeconds(time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)))
}

func retrySeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds() + float64(time.Millisecond)/float64(time.Second)))
}
