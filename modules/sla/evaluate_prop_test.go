package sla_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/sla"
)

// transitions is the ticket status machine (DESIGN.md §3).
var transitions = map[string][]string{
	"open":        {"in_progress", "pending", "resolved", "closed"},
	"in_progress": {"pending", "resolved", "open"},
	"pending":     {"in_progress", "open", "resolved"},
	"resolved":    {"closed", "open"},
	"closed":      {"open"},
}

// policy returns a random policy over the four priorities.
func (g gen) policy() sla.Policy {
	p := sla.Policy{Name: "random", Targets: map[string]sla.Targets{}, PauseWhenPending: g.r.IntN(4) > 0}
	minutes := func() int {
		if g.r.IntN(4) == 0 {
			return 0
		}
		return 1 + g.r.IntN(3000)
	}
	for _, pr := range priorities {
		if g.r.IntN(5) > 0 {
			p.Targets[pr] = sla.Targets{FirstResponse: minutes(), NextResponse: minutes(), Resolution: minutes()}
		}
	}
	switch g.r.IntN(3) {
	case 0:
		p.WarnBefore = 1 + g.r.IntN(120)
	case 1:
		p.WarnAtPercent = 1 + g.r.IntN(99)
	}
	return p
}

// schedule returns around the clock or a random calendar.
func (g gen) schedule(t testing.TB) sla.Schedule {
	if g.r.IntN(2) == 0 {
		return sla.AroundTheClock
	}
	return mustSchedule(t, g.calendar())
}

// timeline returns a random, valid ticket history.
func (g gen) timeline() []sla.Entry {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.r.Int64N(int64(3 * 365 * 24 * time.Hour))))
	status, prio := "open", priorities[g.r.IntN(len(priorities))]
	if g.r.IntN(8) == 0 {
		status = "pending"
	}
	tl := []sla.Entry{{Type: events.Created, At: at, Actor: sla.ActorCustomer, Status: status, Priority: prio}}
	add := func(e sla.Entry) {
		e.At = at
		tl = append(tl, e)
	}
	setStatus := func(to string, actor sla.ActorKind) {
		add(sla.Entry{Type: events.StatusChanged, Actor: actor, Before: status, After: to})
		status = to
	}
	for range 1 + g.r.IntN(60) {
		switch r := g.r.IntN(20); {
		case r < 2: // same instant
		case r < 14:
			at = at.Add(time.Duration(g.r.Int64N(int64(4 * time.Hour))))
		case r < 19:
			at = at.Add(time.Duration(g.r.Int64N(int64(4 * 24 * time.Hour))))
		default:
			at = at.Add(time.Duration(g.r.Int64N(int64(30 * 24 * time.Hour))))
		}
		switch r := g.r.IntN(100); {
		case r < 25:
			add(sla.Entry{Type: events.Commented, Actor: sla.ActorStaff})
		case r < 50:
			if status == "resolved" || status == "closed" {
				setStatus("open", sla.ActorCustomer) // a customer's reply reopens, in the same change
			}
			add(sla.Entry{Type: events.Commented, Actor: sla.ActorCustomer})
		case r < 58:
			add(sla.Entry{Type: events.Commented, Actor: sla.ActorStaff, Internal: true})
		case r < 60:
			add(sla.Entry{Type: events.Commented, Actor: sla.ActorSystem})
		case r < 85:
			next := transitions[status]
			setStatus(next[g.r.IntN(len(next))], sla.ActorStaff)
		case r < 95:
			to := priorities[g.r.IntN(len(priorities))]
			add(sla.Entry{Type: events.PriorityChanged, Actor: sla.ActorStaff, Before: prio, After: to})
			prio = to
		default:
			add(sla.Entry{Type: events.Assigned, Actor: sla.ActorStaff})
		}
	}
	if g.r.IntN(20) == 0 {
		at = at.Add(time.Hour)
		add(sla.Entry{Type: events.Deleted, Actor: sla.ActorStaff})
	}
	return tl
}

// between returns a random instant in [a, b), or a when b is not after a.
func (g gen) between(a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return a.Add(time.Duration(g.r.Int64N(int64(b.Sub(a)))))
}

type alertKey struct {
	m     sla.Metric
	kind  sla.AlertKind
	cycle int
}

func alertMap(t *testing.T, as []sla.Alert) map[alertKey]time.Time {
	t.Helper()
	m := map[alertKey]time.Time{}
	for i, a := range as {
		k := alertKey{a.Metric, a.Kind, a.Cycle}
		if _, dup := m[k]; dup {
			t.Fatalf("alert %+v twice", k)
		}
		if i > 0 && a.At.Before(as[i-1].At) {
			t.Fatalf("alerts out of order: %+v", as)
		}
		m[k] = a.At
	}
	for k, at := range m {
		if k.kind == sla.AlertWarning {
			if b, ok := m[alertKey{k.m, sla.AlertBreach, k.cycle}]; ok && !at.Before(b) {
				t.Fatalf("warning %s not before breach %s for %+v", at, b, k)
			}
		}
	}
	return m
}

func TestEvaluateProperties(t *testing.T) {
	t.Parallel()
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			g := newGen(seed)
			for iter := range 250 {
				p, s, tl := g.policy(), g.schedule(t), g.timeline()
				end := tl[len(tl)-1].At.Add(time.Duration(g.r.Int64N(int64(60 * 24 * time.Hour))))
				where := fmt.Sprintf("iteration %d: policy %+v, schedule in %s, %d entries", iter, p, s.Location(), len(tl))
				input := slices.Clone(tl)
				full := sla.Evaluate(tl, p, s, end)
				if again := sla.Evaluate(tl, p, s, end); !reflect.DeepEqual(full, again) {
					t.Fatalf("not deterministic; %s", where)
				}
				if !slices.Equal(input, tl) {
					t.Fatalf("Evaluate changed its input; %s", where)
				}
				fullAlerts := alertMap(t, full.Alerts)
				checkState(t, full, p, s, end, where)

				// Any prefix, evaluated at an instant before the next entry.
				k := 1 + g.r.IntN(len(tl))
				now := end
				if k < len(tl) {
					now = g.between(tl[k-1].At, tl[k].At)
				}
				if !now.Before(end) || (k < len(tl) && !now.Before(tl[k].At)) {
					continue // entries at the same instant: no gap to stop in
				}
				pre := sla.Evaluate(tl[:k], p, s, now)
				if whole := sla.Evaluate(tl, p, s, now); !reflect.DeepEqual(pre, whole) {
					t.Fatalf("the prefix of %d entries at %s differs from the whole timeline then; %s", k, now, where)
				}
				checkState(t, pre, p, s, now, where)
				// Alerts are never taken back or moved by what happens later.
				for key, at := range alertMap(t, pre.Alerts) {
					if got, ok := fullAlerts[key]; !ok || !got.Equal(at) {
						t.Fatalf("alert %+v at %s in the prefix, %s (%v) in the whole; %s", key, at, got, ok, where)
					}
				}
				checkDeadlines(t, g, tl[:k], pre, p, s, now, where)
				checkPauseNeverEarlier(t, tl[:k], p, s, now, where)
			}
		})
	}
}

// checkState checks invariants of one state at now.
func checkState(t *testing.T, st sla.State, p sla.Policy, s sla.Schedule, now time.Time, where string) {
	t.Helper()
	for _, a := range st.Alerts {
		if a.At.After(now) {
			t.Fatalf("alert %+v after now %s; %s", a, now, where)
		}
	}
	for _, m := range sla.Metrics {
		ms := st.Metric(m)
		if ms == nil {
			continue
		}
		until := now
		if ms.AchievedAt != nil {
			until = *ms.AchievedAt
		}
		if span := s.Between(ms.StartedAt, until); ms.Elapsed > span {
			t.Fatalf("%s counted %s of %s working time; %s", m, ms.Elapsed, span, where)
		}
		for kind, at := range map[sla.AlertKind]*time.Time{sla.AlertBreach: ms.BreachedAt, sla.AlertWarning: ms.WarnedAt} {
			if at != nil && !slices.ContainsFunc(st.Alerts, func(a sla.Alert) bool {
				return a.Metric == m && a.Kind == kind && a.Cycle == ms.Cycle && a.At.Equal(*at)
			}) {
				t.Fatalf("%s %s at %s has no alert; %s", m, kind, at, where)
			}
		}
		if ms.BreachedAt != nil {
			if ms.BreachedAt.After(now) || ms.BreachedAt.Before(ms.StartedAt) {
				t.Fatalf("%s breached at %s outside [start %s, now %s]; %s", m, ms.BreachedAt, ms.StartedAt, now, where)
			}
		}
		if ms.DueAt != nil && ms.AchievedAt == nil && ms.BreachedAt == nil && !ms.DueAt.After(now) {
			t.Fatalf("%s due %s, not after now %s, yet not breached; %s", m, ms.DueAt, now, where)
		}
		if ms.Paused && ms.DueAt != nil && ms.BreachedAt == nil {
			t.Fatalf("%s paused with a deadline; %s", m, where)
		}
	}
}

// checkDeadlines: a running deadline does not drift as time passes, and a
// job evaluating at the deadline (or the warning) sees it fire there.
func checkDeadlines(t *testing.T, g gen, tl []sla.Entry, st sla.State, p sla.Policy, s sla.Schedule, now time.Time, where string) {
	t.Helper()
	for _, m := range sla.Metrics {
		ms := st.Metric(m)
		if ms == nil || ms.DueAt == nil || ms.AchievedAt != nil || ms.BreachedAt != nil {
			continue
		}
		later := g.between(now, *ms.DueAt)
		if got := sla.Evaluate(tl, p, s, later).Metric(m); got == nil || got.DueAt == nil || !got.DueAt.Equal(*ms.DueAt) {
			t.Fatalf("%s due %s at %s, %+v at %s; %s", m, ms.DueAt, now, got, later, where)
		}
		at := sla.Evaluate(tl, p, s, *ms.DueAt).Metric(m)
		if at.BreachedAt == nil || !at.BreachedAt.Equal(*ms.DueAt) {
			t.Fatalf("%s evaluated at its deadline %s: breached %v; %s", m, ms.DueAt, at.BreachedAt, where)
		}
		if ms.WarnAt != nil {
			at := sla.Evaluate(tl, p, s, *ms.WarnAt).Metric(m)
			if at.WarnedAt == nil || !at.WarnedAt.Equal(*ms.WarnAt) {
				t.Fatalf("%s evaluated at its warning %s: warned %v; %s", m, ms.WarnAt, at.WarnedAt, where)
			}
		}
	}
}

// checkPauseNeverEarlier: pausing while pending never brings a deadline or
// a breach forward (compared with the same policy not pausing).
func checkPauseNeverEarlier(t *testing.T, tl []sla.Entry, p sla.Policy, s sla.Schedule, now time.Time, where string) {
	t.Helper()
	pausing, running := p, p
	pausing.PauseWhenPending, running.PauseWhenPending = true, false
	a, b := sla.Evaluate(tl, pausing, s, now), sla.Evaluate(tl, running, s, now)
	breaches := alertMap(t, b.Alerts)
	for key, at := range alertMap(t, a.Alerts) {
		if key.kind != sla.AlertBreach {
			continue
		}
		if other, ok := breaches[key]; !ok || at.Before(other) {
			t.Fatalf("breach %+v at %s when pausing, %s (%v) without; %s", key, at, other, ok, where)
		}
	}
	for _, m := range sla.Metrics {
		x, y := a.Metric(m), b.Metric(m)
		if x == nil || y == nil || x.Cycle != y.Cycle || x.DueAt == nil || y.DueAt == nil {
			continue
		}
		if x.DueAt.Before(*y.DueAt) {
			t.Fatalf("%s due %s when pausing, %s without; %s", m, x.DueAt, y.DueAt, where)
		}
	}
}
