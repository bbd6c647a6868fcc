package sla_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/sla"
)

// t0 is a Monday; timelines are written in minutes after it.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func min2t(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func created(m int, status, priority string) sla.Entry {
	return sla.Entry{Type: events.Created, At: min2t(m), Actor: sla.ActorCustomer, Status: status, Priority: priority}
}

func staffReply(m int) sla.Entry {
	return sla.Entry{Type: events.Commented, At: min2t(m), Actor: sla.ActorStaff}
}

func staffNote(m int) sla.Entry {
	return sla.Entry{Type: events.Commented, At: min2t(m), Actor: sla.ActorStaff, Internal: true}
}

func customerReply(m int) sla.Entry {
	return sla.Entry{Type: events.Commented, At: min2t(m), Actor: sla.ActorCustomer}
}

func systemComment(m int) sla.Entry {
	return sla.Entry{Type: events.Commented, At: min2t(m), Actor: sla.ActorSystem}
}

func status(m int, before, after string) sla.Entry {
	return sla.Entry{Type: events.StatusChanged, At: min2t(m), Actor: sla.ActorStaff, Before: before, After: after}
}

func priority(m int, before, after string) sla.Entry {
	return sla.Entry{Type: events.PriorityChanged, At: min2t(m), Actor: sla.ActorStaff, Before: before, After: after}
}

// testPolicy: high 60/30/240 minutes, low 480/240/2880, urgent first
// response 15 and resolution 60; warnings 10 minutes before; pending pauses.
func testPolicy() sla.Policy {
	return sla.Policy{
		ID: uuid.MustParse("5f0c1e4a-1b2c-4d3e-8f90-a1b2c3d4e5f6"), Version: 3, Name: "Standard",
		Targets: map[string]sla.Targets{
			"high":   {FirstResponse: 60, NextResponse: 30, Resolution: 240},
			"low":    {FirstResponse: 480, NextResponse: 240, Resolution: 2880},
			"urgent": {FirstResponse: 15, Resolution: 60},
		},
		PauseWhenPending: true, WarnBefore: 10,
	}
}

// want describes the expected state of one metric; minutes after t0, -1 for nil.
type want struct {
	due, warnAt, achieved, warned, breached int
	paused                                  bool
	target, cycle                           int
}

func check(t *testing.T, what string, got *sla.MetricState, w *want) {
	t.Helper()
	if w == nil {
		if got != nil {
			t.Errorf("%s: %+v, want no clock", what, *got)
		}
		return
	}
	if got == nil {
		t.Errorf("%s: no clock, want %+v", what, *w)
		return
	}
	field := func(name string, p *time.Time, m int) {
		t.Helper()
		switch {
		case m < 0 && p != nil:
			t.Errorf("%s.%s = %s (minute %v), want nil", what, name, p, p.Sub(t0).Minutes())
		case m >= 0 && (p == nil || !p.Equal(min2t(m))):
			var at any = "nil"
			if p != nil {
				at = p.Sub(t0).Minutes()
			}
			t.Errorf("%s.%s = minute %v, want %d", what, name, at, m)
		}
	}
	field("due_at", got.DueAt, w.due)
	field("warn_at", got.WarnAt, w.warnAt)
	field("achieved_at", got.AchievedAt, w.achieved)
	field("warned_at", got.WarnedAt, w.warned)
	field("breached_at", got.BreachedAt, w.breached)
	if got.Paused != w.paused {
		t.Errorf("%s.paused = %v, want %v", what, got.Paused, w.paused)
	}
	if got.Target != w.target || got.Cycle != w.cycle {
		t.Errorf("%s target/cycle = %d/%d, want %d/%d", what, got.Target, got.Cycle, w.target, w.cycle)
	}
}

func alerts(s ...string) []string { return s }

func alertStrings(as []sla.Alert) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %s #%d @%v", a.Metric, a.Kind, a.Cycle, a.At.Sub(t0).Minutes()))
	}
	return out
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	noPause := testPolicy()
	noPause.PauseWhenPending = false
	percent := testPolicy()
	percent.WarnBefore, percent.WarnAtPercent = 0, 80
	bigWarn := testPolicy()
	bigWarn.WarnBefore = 20 // more than urgent's 15-minute first response
	tests := []struct {
		name        string
		policy      sla.Policy
		timeline    []sla.Entry
		now         int
		first, next *want
		resolution  *want
		alerts      []string
	}{
		{
			name:       "first response in time",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(30)},
			now:        35,
			first:      &want{due: 60, warnAt: -1, achieved: 30, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "first response late: warning, then breach at the deadline",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(90)},
			now:        100,
			first:      &want{due: 60, warnAt: -1, achieved: 90, warned: 50, breached: 60, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response warning #0 @50", "first_response breach #0 @60"),
		},
		{
			name:       "a reply exactly at the deadline is late",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(60)},
			now:        61,
			first:      &want{due: 60, warnAt: -1, achieved: 60, warned: 50, breached: 60, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response warning #0 @50", "first_response breach #0 @60"),
		},
		{
			name:       "running: deadline and warning ahead",
			timeline:   []sla.Entry{created(0, "open", "high")},
			now:        20,
			first:      &want{due: 60, warnAt: 50, achieved: -1, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "running past the warning",
			timeline:   []sla.Entry{created(0, "open", "high")},
			now:        55,
			first:      &want{due: 60, warnAt: -1, achieved: -1, warned: 50, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response warning #0 @50"),
		},
		{
			name:       "at the deadline it is breached",
			timeline:   []sla.Entry{created(0, "open", "high")},
			now:        60,
			first:      &want{due: 60, warnAt: -1, achieved: -1, warned: 50, breached: 60, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response warning #0 @50", "first_response breach #0 @60"),
		},
		{
			name: "internal notes, system comments and customer replies do not answer",
			timeline: []sla.Entry{created(0, "open", "high"), staffNote(5), systemComment(6), customerReply(7),
				{Type: events.Commented, At: min2t(8), Actor: sla.ActorCustomer, Internal: true}},
			now:        20,
			first:      &want{due: 60, warnAt: 50, achieved: -1, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name: "next response: the oldest unanswered customer reply starts it",
			timeline: []sla.Entry{created(0, "open", "high"), staffReply(10), customerReply(20), customerReply(25), staffReply(35),
				customerReply(100)},
			now:        105,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			next:       &want{due: 130, warnAt: 120, achieved: -1, warned: -1, breached: -1, target: 30, cycle: 1},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name: "next response: an earlier cycle's breach stays among the alerts",
			timeline: []sla.Entry{created(0, "open", "high"), staffReply(10), customerReply(20), staffNote(45), staffReply(60),
				customerReply(70), staffReply(80)},
			now:        90,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			next:       &want{due: 100, warnAt: -1, achieved: 80, warned: -1, breached: -1, target: 30, cycle: 1},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("next_response warning #0 @40", "next_response breach #0 @50"),
		},
		{
			name:       "pending pauses every clock; no deadline while paused",
			timeline:   []sla.Entry{created(0, "open", "high"), status(20, "open", "pending")},
			now:        300,
			first:      &want{due: -1, warnAt: -1, achieved: -1, warned: -1, breached: -1, paused: true, target: 60},
			resolution: &want{due: -1, warnAt: -1, achieved: -1, warned: -1, breached: -1, paused: true, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "paused time does not count",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(10), status(60, "open", "pending"), status(180, "pending", "in_progress")},
			now:        200,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 360, warnAt: 350, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "a policy that does not pause when pending",
			policy:     noPause,
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(10), status(60, "open", "pending"), status(180, "pending", "in_progress")},
			now:        200,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "a customer reply ends the pending pause and starts next response",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(10), status(20, "open", "pending"), customerReply(50)},
			now:        60,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			next:       &want{due: 80, warnAt: 70, achieved: -1, warned: -1, breached: -1, target: 30},
			resolution: &want{due: 270, warnAt: 260, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "created pending starts paused",
			timeline:   []sla.Entry{created(0, "pending", "high"), status(100, "pending", "open")},
			now:        110,
			first:      &want{due: 160, warnAt: 150, achieved: -1, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 340, warnAt: 330, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "resolving achieves resolution, and the response clocks",
			timeline:   []sla.Entry{created(0, "open", "high"), status(45, "open", "resolved"), status(50, "resolved", "closed")},
			now:        1000,
			first:      &want{due: 60, warnAt: -1, achieved: 45, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: -1, achieved: 45, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name: "a reopen continues resolution from the time already counted",
			timeline: []sla.Entry{created(0, "open", "high"), staffReply(10), status(100, "open", "resolved"),
				status(1000, "resolved", "open")},
			now:        1100,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 1140, warnAt: 1130, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name: "a customer's reply that reopens starts next response",
			timeline: []sla.Entry{created(0, "open", "high"), staffReply(10), status(100, "open", "resolved"),
				{Type: events.StatusChanged, At: min2t(500), Actor: sla.ActorCustomer, Before: "resolved", After: "open"}, customerReply(500)},
			now:        510,
			first:      &want{due: 60, warnAt: -1, achieved: 10, warned: -1, breached: -1, target: 60},
			next:       &want{due: 530, warnAt: 520, achieved: -1, warned: -1, breached: -1, target: 30},
			resolution: &want{due: 640, warnAt: 630, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "a breach survives resolving and reopening",
			timeline:   []sla.Entry{created(0, "open", "urgent"), status(100, "open", "resolved"), status(200, "resolved", "open")},
			now:        210,
			first:      &want{due: 15, warnAt: -1, achieved: 100, warned: 5, breached: 15, target: 15},
			resolution: &want{due: 60, warnAt: -1, achieved: -1, warned: 50, breached: 60, target: 60},
			alerts:     alerts("first_response warning #0 @5", "first_response breach #0 @15", "resolution warning #0 @50", "resolution breach #0 @60"),
		},
		{
			name:       "a priority change re-targets from the original start; overdue at once means a breach at the change",
			timeline:   []sla.Entry{created(0, "open", "low"), priority(100, "low", "high")},
			now:        120,
			first:      &want{due: 100, warnAt: -1, achieved: -1, warned: -1, breached: 100, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response breach #0 @100"),
		},
		{
			name:       "a priority change past the warning point warns at the change",
			timeline:   []sla.Entry{created(0, "open", "low"), priority(55, "low", "high")},
			now:        56,
			first:      &want{due: 60, warnAt: -1, achieved: -1, warned: 55, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response warning #0 @55"),
		},
		{
			name:       "lowering the priority moves the deadline later",
			timeline:   []sla.Entry{created(0, "open", "high"), priority(30, "high", "low")},
			now:        40,
			first:      &want{due: 480, warnAt: 470, achieved: -1, warned: -1, breached: -1, target: 480},
			resolution: &want{due: 2880, warnAt: 2870, achieved: -1, warned: -1, breached: -1, target: 2880},
			alerts:     alerts(),
		},
		{
			name:       "an achieved cycle keeps the target it was met against",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(50), priority(60, "high", "urgent")},
			now:        61,
			first:      &want{due: 60, warnAt: -1, achieved: 50, warned: 50, breached: -1, target: 60},
			resolution: &want{due: 60, warnAt: -1, achieved: -1, warned: -1, breached: 60, target: 60},
			alerts:     alerts("first_response warning #0 @50", "resolution breach #0 @60"),
		},
		{
			name:       "a priority without targets has no clocks, but time still counts",
			timeline:   []sla.Entry{created(0, "open", "normal"), priority(200, "normal", "high")},
			now:        201,
			first:      &want{due: 200, warnAt: -1, achieved: -1, warned: -1, breached: 200, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts("first_response breach #0 @200"),
		},
		{
			name:     "no targets for the priority",
			timeline: []sla.Entry{created(0, "open", "normal")},
			now:      5000,
			alerts:   alerts(),
		},
		{
			name:       "warning at a percentage of the target",
			policy:     percent,
			timeline:   []sla.Entry{created(0, "open", "high")},
			now:        1,
			first:      &want{due: 60, warnAt: 48, achieved: -1, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 192, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "a warning longer than the target is dropped",
			policy:     bigWarn,
			timeline:   []sla.Entry{created(0, "open", "urgent")},
			now:        100,
			first:      &want{due: 15, warnAt: -1, achieved: -1, warned: -1, breached: 15, target: 15},
			resolution: &want{due: 60, warnAt: -1, achieved: -1, warned: 40, breached: 60, target: 60},
			alerts:     alerts("first_response breach #0 @15", "resolution warning #0 @40", "resolution breach #0 @60"),
		},
		{
			name:       "deleting a ticket stops its clocks",
			timeline:   []sla.Entry{created(0, "open", "high"), {Type: events.Deleted, At: min2t(20), Actor: sla.ActorStaff}},
			now:        1000,
			first:      &want{due: -1, warnAt: -1, achieved: -1, warned: -1, breached: -1, paused: true, target: 60},
			resolution: &want{due: -1, warnAt: -1, achieved: -1, warned: -1, breached: -1, paused: true, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "entries after now are ignored",
			timeline:   []sla.Entry{created(0, "open", "high"), staffReply(30)},
			now:        20,
			first:      &want{due: 60, warnAt: 50, achieved: -1, warned: -1, breached: -1, target: 60},
			resolution: &want{due: 240, warnAt: 230, achieved: -1, warned: -1, breached: -1, target: 240},
			alerts:     alerts(),
		},
		{
			name:       "an unordered timeline is read in time order",
			timeline:   []sla.Entry{staffReply(30), priority(10, "high", "low"), created(0, "open", "high")},
			now:        40,
			first:      &want{due: 480, warnAt: -1, achieved: 30, warned: -1, breached: -1, target: 480},
			resolution: &want{due: 2880, warnAt: 2870, achieved: -1, warned: -1, breached: -1, target: 2880},
			alerts:     alerts(),
		},
		{
			name:     "entries before creation, or without one, do nothing",
			timeline: []sla.Entry{staffReply(0)},
			now:      100,
			alerts:   alerts(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			if p.Name == "" {
				p = testPolicy()
			}
			before := slices.Clone(tc.timeline)
			st := sla.Evaluate(tc.timeline, p, sla.AroundTheClock, min2t(tc.now))
			if !slices.Equal(before, tc.timeline) {
				t.Fatal("Evaluate changed its input")
			}
			check(t, "first_response", st.FirstResponse, tc.first)
			check(t, "next_response", st.NextResponse, tc.next)
			check(t, "resolution", st.Resolution, tc.resolution)
			if got := alertStrings(st.Alerts); !slices.Equal(got, tc.alerts) {
				t.Errorf("alerts = %q, want %q", got, tc.alerts)
			}
			if st.PolicyID != p.ID || st.PolicyVersion != p.Version {
				t.Errorf("state names policy %s v%d", st.PolicyID, st.PolicyVersion)
			}
		})
	}
}

func TestEvaluateBusinessHours(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	s := mustSchedule(t, officeHours("Europe/Berlin", "2026-04-03", "2026-04-06"))
	p := testPolicy()
	// Created Thursday before Easter at 16:30: 30 minutes on Thursday, then
	// Good Friday, the weekend and Easter Monday are off.
	c := at(t, berlin, "2026-04-02 16:30")
	tl := []sla.Entry{{Type: events.Created, At: c, Actor: sla.ActorCustomer, Status: "open", Priority: "high"}}
	st := sla.Evaluate(tl, p, s, at(t, berlin, "2026-04-04 12:00"))
	if want := at(t, berlin, "2026-04-07 09:30"); !st.FirstResponse.DueAt.Equal(want) {
		t.Fatalf("first response due %s, want %s", st.FirstResponse.DueAt, want)
	}
	if want := at(t, berlin, "2026-04-07 09:20"); !st.FirstResponse.WarnAt.Equal(want) {
		t.Fatalf("warning at %s, want %s", st.FirstResponse.WarnAt, want)
	}
	// Pending from Tuesday 09:10 to 15:10 (six working hours) pauses.
	tl = append(tl,
		sla.Entry{Type: events.StatusChanged, At: at(t, berlin, "2026-04-07 09:10"), Actor: sla.ActorStaff, Before: "open", After: "pending"},
		sla.Entry{Type: events.StatusChanged, At: at(t, berlin, "2026-04-07 15:10"), Actor: sla.ActorStaff, Before: "pending", After: "open"})
	st = sla.Evaluate(tl, p, s, at(t, berlin, "2026-04-07 15:15"))
	if want := at(t, berlin, "2026-04-07 15:30"); !st.FirstResponse.DueAt.Equal(want) {
		t.Fatalf("first response due after the pause %s, want %s", st.FirstResponse.DueAt, want)
	}
	// Resolution: 240 minutes; 30 (Thursday) + 10 counted before the pause, 5 after: 195 left
	// from Tuesday 15:15, 105 of them on Tuesday → Wednesday 10:30.
	if want := at(t, berlin, "2026-04-08 10:30"); !st.Resolution.DueAt.Equal(want) {
		t.Fatalf("resolution due %s, want %s", st.Resolution.DueAt, want)
	}
	// A night later the first response breached at its deadline, not when someone looked.
	st = sla.Evaluate(tl, p, s, at(t, berlin, "2026-04-08 08:00"))
	if want := at(t, berlin, "2026-04-07 15:30"); st.FirstResponse.BreachedAt == nil || !st.FirstResponse.BreachedAt.Equal(want) {
		t.Fatalf("breached at %v, want %s", st.FirstResponse.BreachedAt, want)
	}
}

func TestStateNextWakeAndDue(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	st := sla.Evaluate([]sla.Entry{created(0, "open", "high")}, p, sla.AroundTheClock, min2t(1))
	if w, ok := st.NextWake(); !ok || !w.Equal(min2t(50)) {
		t.Fatalf("NextWake = %s %v, want the warning at minute 50", w, ok)
	}
	if d, ok := st.NextDue(); !ok || !d.Equal(min2t(60)) {
		t.Fatalf("NextDue = %s %v, want minute 60", d, ok)
	}
	// The job at the wake-up instant sees the warning.
	st = sla.Evaluate([]sla.Entry{created(0, "open", "high")}, p, sla.AroundTheClock, min2t(50))
	if got := alertStrings(st.Alerts); !slices.Equal(got, alerts("first_response warning #0 @50")) {
		t.Fatalf("alerts at the wake-up = %q", got)
	}
	if w, _ := st.NextWake(); !w.Equal(min2t(60)) {
		t.Fatalf("next wake = %s, want the deadline", w)
	}
	// Breached: the first response no longer wakes anything; it sorts first by due.
	st = sla.Evaluate([]sla.Entry{created(0, "open", "high")}, p, sla.AroundTheClock, min2t(61))
	if w, _ := st.NextWake(); !w.Equal(min2t(230)) {
		t.Fatalf("next wake = %s, want the resolution warning", w)
	}
	if d, _ := st.NextDue(); !d.Equal(min2t(60)) {
		t.Fatalf("NextDue = %s, want the breached deadline", d)
	}
	// Paused: nothing to wake for.
	st = sla.Evaluate([]sla.Entry{created(0, "pending", "high")}, p, sla.AroundTheClock, min2t(1))
	if _, ok := st.NextWake(); ok {
		t.Fatal("a paused ticket has no wake-up")
	}
	if _, ok := st.NextDue(); ok {
		t.Fatal("a paused ticket has no due date")
	}
}

func TestStateJSON(t *testing.T) {
	t.Parallel()
	st := sla.Evaluate([]sla.Entry{created(0, "open", "high"), staffReply(90)}, testPolicy(), sla.AroundTheClock, min2t(100))
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	var fr map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m["first_response"], &fr); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"target", "due_at", "paused", "achieved_at", "warned_at", "breached_at"} {
		if _, ok := fr[key]; !ok {
			t.Errorf("first_response lacks %q: %s", key, b)
		}
	}
	if fr["breached_at"] != "2026-03-02T01:00:00Z" || fr["target"] != float64(60) {
		t.Errorf("first_response = %v", fr)
	}
	if !strings.Contains(string(b), `"policy_id":"5f0c1e4a-1b2c-4d3e-8f90-a1b2c3d4e5f6"`) {
		t.Errorf("no policy id: %s", b)
	}
	var back sla.State
	if err := json.Unmarshal(b, &back); err != nil || !back.FirstResponse.BreachedAt.Equal(*st.FirstResponse.BreachedAt) || len(back.Alerts) != 2 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}
