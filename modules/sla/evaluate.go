package sla

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
)

// ActorKind says who made a timeline entry, as far as SLAs care.
type ActorKind string

// Actor kinds.
const (
	// ActorSystem is an automatic change, or an actor the caller cannot
	// place: it never answers or restarts a response clock.
	ActorSystem ActorKind = "system"
	// ActorStaff is any member who is not a customer.
	ActorStaff ActorKind = "staff"
	// ActorCustomer is an end user (the customer role).
	ActorCustomer ActorKind = "customer"
)

// Entry is the part of a ticket timeline entry the clocks read. Build it
// with FromTimeline, FromReplayed or FromChange.
type Entry struct {
	// Type is the timeline type (events.Created, events.Commented, ...).
	Type  string
	At    time.Time
	Actor ActorKind
	// Internal marks an internal note (commented).
	Internal bool
	// Before and After are the old and new values of a status or
	// priority change.
	Before, After string
	// Status and Priority are the initial values (created).
	Status, Priority string
}

// MetricState is one metric's clock: the current cycle (next_response
// restarts; the others have a single cycle). Times are nil when they do
// not apply.
type MetricState struct {
	// Target is the target in minutes of working time, for the ticket's
	// current priority (or the priority when the cycle was achieved).
	Target int `json:"target"`
	// Cycle numbers the cycles of next_response from 0; always 0 for the others.
	Cycle     int       `json:"cycle"`
	StartedAt time.Time `json:"started_at"`
	// DueAt is the first instant at which the metric is breached unless
	// achieved before. Nil while paused (no deadline can be known). For a
	// breached metric it is BreachedAt; for an achieved one, the deadline
	// it was measured against.
	DueAt *time.Time `json:"due_at"`
	// WarnAt is when the warning will fire, while it is still ahead.
	WarnAt *time.Time `json:"warn_at"`
	// Paused is true while the clock is stopped by a pending ticket (or
	// the ticket was deleted).
	Paused     bool       `json:"paused"`
	AchievedAt *time.Time `json:"achieved_at"`
	WarnedAt   *time.Time `json:"warned_at"`
	BreachedAt *time.Time `json:"breached_at"`
	// Elapsed is the working time counted so far (to now, or to AchievedAt).
	Elapsed time.Duration `json:"-"`
}

// AlertKind is a warning or a breach.
type AlertKind string

// Alert kinds.
const (
	AlertWarning AlertKind = "warning"
	AlertBreach  AlertKind = "breach"
)

// Alert is a warning or breach point the timeline has passed. Each is
// computed, not observed: At is the instant the point was reached, however
// late anyone looks. A later entry never removes or moves an alert, so
// (metric, kind, cycle) identifies it for recording exactly once.
type Alert struct {
	Metric Metric    `json:"metric"`
	Kind   AlertKind `json:"kind"`
	Cycle  int       `json:"cycle"`
	At     time.Time `json:"at"`
}

// State is a ticket's SLA state under one policy at one instant.
type State struct {
	PolicyID      uuid.UUID    `json:"policy_id"`
	PolicyVersion int          `json:"policy_version"`
	FirstResponse *MetricState `json:"first_response,omitempty"`
	NextResponse  *MetricState `json:"next_response,omitempty"`
	Resolution    *MetricState `json:"resolution,omitempty"`
	// Alerts are every warning and breach reached up to now, oldest first,
	// including those of earlier next_response cycles.
	Alerts []Alert `json:"alerts,omitempty"`
}

// Metric returns the state of metric m, nil when it has no clock.
func (s State) Metric(m Metric) *MetricState {
	switch m {
	case FirstResponse:
		return s.FirstResponse
	case NextResponse:
		return s.NextResponse
	case Resolution:
		return s.Resolution
	}
	return nil
}

// NextWake returns the next instant at which the state changes without a
// new timeline entry: the earliest warning or deadline still ahead. A job
// scheduled then and evaluating at that instant or later sees the alert.
func (s State) NextWake() (time.Time, bool) {
	var next time.Time
	for _, m := range Metrics {
		ms := s.Metric(m)
		if ms == nil {
			continue
		}
		for _, t := range []*time.Time{ms.WarnAt, ms.DueAt} {
			if t != nil && ms.AchievedAt == nil && ms.BreachedAt == nil && (next.IsZero() || t.Before(next)) {
				next = *t
			}
		}
	}
	return next, !next.IsZero()
}

// NextDue returns the earliest deadline of a metric still running (not
// achieved, not paused), breached ones included: the ?sort=due key.
func (s State) NextDue() (time.Time, bool) {
	var next time.Time
	for _, m := range Metrics {
		if ms := s.Metric(m); ms != nil && ms.DueAt != nil && ms.AchievedAt == nil && !ms.Paused && (next.IsZero() || ms.DueAt.Before(next)) {
			next = *ms.DueAt
		}
	}
	return next, !next.IsZero()
}

// clock is one metric's running state during an evaluation.
type clock struct {
	started, running bool
	cycle            int
	start, achieved  time.Time // achieved: zero unless achieved
	elapsed          time.Duration
	warned, breached time.Time // zero: not reached
	frozen           time.Duration
}

// evaluation replays a timeline through the clocks.
type evaluation struct {
	p       *Policy
	s       Schedule
	status  string
	targets [3]time.Duration // of the ticket's current priority, indexed like Metrics
	// waiting is true while pending and the customer has not replied since.
	waiting, deleted bool
	mark             time.Time // clocks have been advanced to here
	clocks           [3]clock  // indexed like Metrics
	alerts           []Alert
}

const (
	iFirst = iota
	iNext
	iResolution
)

// Evaluate computes a ticket's SLA state from its timeline under policy p
// and schedule s (the policy's calendar; AroundTheClock without one) at
// instant now. It is a pure function of its arguments. Entries after now
// are ignored; entries are taken in time order (the given order among equal
// times). The rules:
//
//   - first_response starts at creation and is achieved by the first
//     public comment of staff.
//   - next_response starts at a customer's comment when first_response is
//     achieved and no next_response is running (so the oldest unanswered
//     customer reply starts it; later ones do not restart it), and is
//     achieved by the next public staff comment. Each start is a new cycle.
//   - resolution starts at creation and is achieved when the ticket is
//     resolved or closed. While solved its clock stops; a reopen clears
//     the achievement and the clock continues from the time already
//     counted (Zendesk's behaviour: the solved span counts as paused).
//   - Solving a ticket also achieves any running response clock.
//   - If the policy pauses when pending, every clock stops while the ticket
//     is pending, until the status changes or the customer comments (a
//     customer's reply ends the wait on the customer, as if it reopened).
//   - Targets follow the ticket's current priority: a priority change
//     re-targets running clocks from their original start. An achieved
//     cycle keeps the target it was achieved against. A metric without a
//     target for the priority has no clock in the State, but its time is
//     still counted, for a later change to a priority that has one.
//   - Other entries (assigned, tags or title changed) do not touch the clocks.
//   - A metric is breached at its deadline if not achieved strictly before
//     it; a warning fires at its point if that precedes the breach. Each
//     fires at most once per cycle and is never taken back: if a priority
//     change makes a clock overdue, the breach is at the change.
//   - Deleting a ticket stops its clocks.
func Evaluate(timeline []Entry, p Policy, s Schedule, now time.Time) State {
	st := State{PolicyID: p.ID, PolicyVersion: p.Version}
	if !slices.IsSortedFunc(timeline, byTime) {
		timeline = slices.Clone(timeline)
		slices.SortStableFunc(timeline, byTime)
	}
	e := evaluation{p: &p, s: s}
	created := false
	for _, en := range timeline {
		if en.At.After(now) {
			break
		}
		if !created {
			if en.Type == events.Created {
				e.create(en)
				created = true
			}
			continue
		}
		e.advance(en.At)
		e.apply(en)
	}
	if !created {
		return st
	}
	e.advance(now)
	st.FirstResponse = e.output(iFirst)
	st.NextResponse = e.output(iNext)
	st.Resolution = e.output(iResolution)
	slices.SortStableFunc(e.alerts, func(a, b Alert) int { return a.At.Compare(b.At) })
	st.Alerts = e.alerts
	return st
}

func byTime(a, b Entry) int { return a.At.Compare(b.At) }

func solved(status string) bool {
	return status == events.StatusResolved || status == events.StatusClosed
}

func (e *evaluation) paused() bool { return e.deleted || (e.waiting && e.p.PauseWhenPending) }

func (e *evaluation) target(i int) time.Duration { return e.targets[i] }

func (e *evaluation) setPriority(p string) {
	for i, m := range Metrics {
		e.targets[i] = e.p.Target(p, m)
	}
}

func (e *evaluation) create(en Entry) {
	e.status, e.mark = events.StatusOpen, en.At
	e.setPriority(en.Priority)
	e.begin(iFirst, en.At)
	e.begin(iResolution, en.At)
	if en.Status != "" {
		e.setStatus(en.Status, en.At)
	}
}

// begin starts a new cycle of clock i.
func (e *evaluation) begin(i int, at time.Time) {
	c := &e.clocks[i]
	cycle := 0
	if c.started {
		cycle = c.cycle + 1
	}
	*c = clock{started: true, running: true, cycle: cycle, start: at}
}

func (e *evaluation) achieve(i int, at time.Time) {
	c := &e.clocks[i]
	if c.running {
		c.running, c.achieved, c.frozen = false, at, e.target(i)
	}
}

func (e *evaluation) apply(en Entry) {
	switch en.Type {
	case events.Commented:
		switch {
		case en.Internal:
		case en.Actor == ActorStaff:
			e.achieve(iFirst, en.At)
			e.achieve(iNext, en.At)
		case en.Actor == ActorCustomer:
			e.waiting = false
			first, next := &e.clocks[iFirst], &e.clocks[iNext]
			if !solved(e.status) && !first.running && !next.running {
				e.begin(iNext, en.At)
			}
		}
	case events.StatusChanged:
		if en.After != "" {
			e.setStatus(en.After, en.At)
		}
	case events.PriorityChanged:
		if en.After != "" {
			e.setPriority(en.After)
		}
	case events.Deleted:
		e.deleted = true
	}
}

func (e *evaluation) setStatus(to string, at time.Time) {
	from := e.status
	if from == to {
		return
	}
	e.status = to
	e.waiting = to == events.StatusPending
	switch {
	case !solved(from) && solved(to):
		e.achieve(iFirst, at)
		e.achieve(iNext, at)
		e.achieve(iResolution, at)
	case solved(from) && !solved(to):
		if c := &e.clocks[iResolution]; c.started && !c.running {
			c.running, c.achieved, c.frozen = true, time.Time{}, 0
		}
	}
}

// advance runs the clocks from e.mark to instant to, firing every warning
// and breach point reached at or before to.
func (e *evaluation) advance(to time.Time) {
	if !to.After(e.mark) {
		to = e.mark
	}
	if e.paused() {
		e.mark = to
		return
	}
	inc, counted := time.Duration(0), false
	for i := range e.clocks {
		c := &e.clocks[i]
		if !c.running {
			continue
		}
		if !counted {
			inc, counted = e.s.Between(e.mark, to), true
		}
		if tgt := e.target(i); tgt > 0 {
			e.fire(i, c, inc, tgt)
		}
		c.elapsed += inc
	}
	e.mark = to
}

// fire records the warning and breach points of clock i reached within
// the next inc of working time after e.mark. A warning fires only before
// the breach: when both are reached at once (a re-target), only the breach.
func (e *evaluation) fire(i int, c *clock, inc, tgt time.Duration) {
	if !c.breached.IsZero() {
		return
	}
	breach, breached := e.reach(c.elapsed, inc, tgt)
	if wp := e.p.warnPoint(tgt); wp > 0 && c.warned.IsZero() {
		if at, ok := e.reach(c.elapsed, inc, wp); ok && (!breached || at.Before(breach)) {
			c.warned = at
			e.alerts = append(e.alerts, Alert{Metric: Metrics[i], Kind: AlertWarning, Cycle: c.cycle, At: at})
		}
	}
	if breached {
		c.breached = breach
		e.alerts = append(e.alerts, Alert{Metric: Metrics[i], Kind: AlertBreach, Cycle: c.cycle, At: breach})
	}
}

// reach returns the instant at which a clock that has counted elapsed at
// e.mark reaches point, if it does within the next inc of working time.
func (e *evaluation) reach(elapsed, inc, point time.Duration) (time.Time, bool) {
	switch {
	case elapsed >= point:
		return e.mark, true
	case elapsed+inc >= point:
		return e.s.Add(e.mark, point-elapsed), true
	}
	return time.Time{}, false
}

// output reports clock i at e.mark (now), or nil when it has no target.
func (e *evaluation) output(i int) *MetricState {
	c := &e.clocks[i]
	tgt := c.frozen
	if c.running {
		tgt = e.target(i)
	}
	if !c.started || tgt <= 0 {
		return nil
	}
	ms := &MetricState{Target: int(tgt / time.Minute), Cycle: c.cycle, StartedAt: c.start, Elapsed: c.elapsed,
		WarnedAt: timePtr(c.warned), BreachedAt: timePtr(c.breached), AchievedAt: timePtr(c.achieved)}
	switch {
	case !c.breached.IsZero():
		ms.DueAt = ms.BreachedAt
		ms.Paused = c.running && e.paused()
	case !c.running:
		ms.DueAt = timePtr(e.s.Add(c.achieved, tgt-c.elapsed))
	case e.paused():
		ms.Paused = true
	default:
		ms.DueAt = timePtr(e.s.Add(e.mark, tgt-c.elapsed))
		if wp := e.p.warnPoint(tgt); wp > c.elapsed && c.warned.IsZero() {
			ms.WarnAt = timePtr(e.s.Add(e.mark, wp-c.elapsed))
		}
	}
	return ms
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
