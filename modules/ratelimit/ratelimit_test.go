package ratelimit

import "testing"

func TestAllowPerKeyWithRetryAfter(t *testing.T) {
	t.Parallel()
	l := New(60, 2, 10) // one per second, burst 2
	for i := range 2 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within the burst was refused", i)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry < 1 {
		t.Fatalf("third request: ok=%v retry=%d, want refused with Retry-After >= 1", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited by the first")
	}
}

func TestKeysAreBounded(t *testing.T) {
	t.Parallel()
	l := New(60, 1, 3)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		l.Allow(k)
	}
	if n := len(l.keys); n > 3 {
		t.Fatalf("tracking %d keys, bound is 3", n)
	}
}

func TestExhaustedPeeksWithoutSpending(t *testing.T) {
	t.Parallel()
	l := New(60, 2, 10)
	for range 5 {
		if done, _ := l.Exhausted("a"); done {
			t.Fatal("an unused key reported exhausted")
		}
	}
	l.Allow("a")
	if done, _ := l.Exhausted("a"); done {
		t.Fatal("exhausted after one event of a burst of two")
	}
	l.Allow("a")
	done, retry := l.Exhausted("a")
	if !done || retry < 1 {
		t.Fatalf("after the burst: exhausted=%v retry=%d, want true and >= 1", done, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited by the first")
	}
}
