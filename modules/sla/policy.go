package sla

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// Metric names one SLA clock.
type Metric string

// The three metrics a policy can target.
const (
	// FirstResponse runs from the ticket's creation to the first public
	// reply by staff.
	FirstResponse Metric = "first_response"
	// NextResponse runs from a customer's reply that follows a staff reply
	// (the oldest unanswered customer reply) to the next public staff reply.
	NextResponse Metric = "next_response"
	// Resolution runs from creation until the ticket is resolved or closed,
	// pausing while it is solved and continuing if it is reopened.
	Resolution Metric = "resolution"
)

// Metrics lists every metric, in the order State reports them.
var Metrics = []Metric{FirstResponse, NextResponse, Resolution}

// Limits of a policy.
const (
	maxTargetMinutes = 365 * 24 * 60
	maxNameLength    = 200
	maxConditionList = 100
)

// Policy is one SLA policy: which tickets it applies to and their targets.
// It is what the integration stores (as JSON); ID and Version identify the
// policy version a ticket's SLA state was computed with.
type Policy struct {
	ID       uuid.UUID `json:"id"`
	Version  int       `json:"version"`
	Name     string    `json:"name"`
	Position int       `json:"position"`
	// Conditions select the tickets; Match picks the first policy whose
	// conditions hold.
	Conditions Conditions `json:"conditions"`
	// Targets maps a ticket priority to its targets. A priority without an
	// entry, or a metric without a target, has no clock for that metric.
	Targets map[string]Targets `json:"targets"`
	// CalendarID is the business-hours calendar; nil is around the clock.
	CalendarID *uuid.UUID `json:"calendar_id"`
	// PauseWhenPending stops the clocks while the ticket waits on the
	// customer (status pending). It defaults to true when decoded from JSON
	// without the field.
	PauseWhenPending bool `json:"pause_when_pending"`
	// WarnBefore, in minutes, raises a warning that long before a deadline
	// (in the policy's working time). Zero: no warning.
	WarnBefore int `json:"warn_before,omitempty"`
	// WarnAtPercent raises the warning when this share of a target has
	// elapsed (80: at 80 %). An alternative to WarnBefore; zero: unused.
	WarnAtPercent int `json:"warn_at_percent,omitempty"`
}

// Conditions select tickets. Empty lists and a nil group match anything;
// every condition given must hold.
type Conditions struct {
	// Priority holds if the ticket's priority is one of these.
	Priority []string `json:"priority,omitempty"`
	// Tags holds if the ticket carries at least one of these tags.
	Tags []string `json:"tags,omitempty"`
	// GroupID holds if the ticket is in this group.
	GroupID *uuid.UUID `json:"group_id,omitempty"`
}

// Targets of one priority, in minutes of working time; zero is no target.
type Targets struct {
	FirstResponse int `json:"first_response,omitempty"`
	NextResponse  int `json:"next_response,omitempty"`
	Resolution    int `json:"resolution,omitempty"`
}

// Minutes returns the target of metric m in minutes (zero: none).
func (t Targets) Minutes(m Metric) int {
	switch m {
	case FirstResponse:
		return t.FirstResponse
	case NextResponse:
		return t.NextResponse
	case Resolution:
		return t.Resolution
	}
	return 0
}

// UnmarshalJSON decodes a policy, defaulting pause_when_pending to true
// when the field is absent, as the API promises.
func (p *Policy) UnmarshalJSON(b []byte) error {
	type plain Policy
	v := plain{PauseWhenPending: true}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Policy(v)
	return nil
}

// Target returns the target of metric m for a ticket of the given
// priority, or zero when the policy sets none.
func (p *Policy) Target(priority string, m Metric) time.Duration {
	return time.Duration(p.Targets[priority].Minutes(m)) * time.Minute
}

// warnPoint returns how much working time of target elapses before the
// warning, or zero for no warning. A warning that would fall at or before
// the start of the clock is dropped rather than raised at once.
func (p *Policy) warnPoint(target time.Duration) time.Duration {
	var at time.Duration
	switch {
	case p.WarnAtPercent > 0:
		at = target * time.Duration(p.WarnAtPercent) / 100
	case p.WarnBefore > 0:
		at = target - time.Duration(p.WarnBefore)*time.Minute
	}
	return max(at, 0)
}

// Validate checks a policy, returning an errs.ErrInvalid problem that names
// the field. priorities lists the ticket priorities that exist; nil skips
// that check.
func (p *Policy) Validate(priorities []string) error {
	knownPriority := func(field, pr string) error {
		if pr == "" || (priorities != nil && !slices.Contains(priorities, pr)) {
			return errs.Errorf(errs.ErrInvalid, "%s: unknown priority %q (one of %s)", field, pr, strings.Join(priorities, ", "))
		}
		return nil
	}
	switch {
	case strings.TrimSpace(p.Name) == "":
		return errs.Errorf(errs.ErrInvalid, "name is required")
	case len(p.Name) > maxNameLength:
		return errs.Errorf(errs.ErrInvalid, "name: at most %d characters", maxNameLength)
	case p.Position < 0:
		return errs.Errorf(errs.ErrInvalid, "position: must not be negative")
	case len(p.Conditions.Priority) > maxConditionList || len(p.Conditions.Tags) > maxConditionList:
		return errs.Errorf(errs.ErrInvalid, "conditions: at most %d values a list", maxConditionList)
	case p.WarnBefore < 0 || p.WarnBefore > maxTargetMinutes:
		return errs.Errorf(errs.ErrInvalid, "warn_before: minutes between 0 and %d", maxTargetMinutes)
	case p.WarnAtPercent < 0 || p.WarnAtPercent > 99:
		return errs.Errorf(errs.ErrInvalid, "warn_at_percent: between 1 and 99")
	case p.WarnBefore > 0 && p.WarnAtPercent > 0:
		return errs.Errorf(errs.ErrInvalid, "set warn_before or warn_at_percent, not both")
	case len(p.Targets) == 0:
		return errs.Errorf(errs.ErrInvalid, "targets: at least one priority needs a target")
	}
	for i, pr := range p.Conditions.Priority {
		if err := knownPriority(fmt.Sprintf("conditions.priority[%d]", i), pr); err != nil {
			return err
		}
	}
	for i, tag := range p.Conditions.Tags {
		if strings.TrimSpace(tag) == "" {
			return errs.Errorf(errs.ErrInvalid, "conditions.tags[%d]: empty tag", i)
		}
	}
	for _, pr := range slices.Sorted(maps.Keys(p.Targets)) {
		if err := knownPriority("targets", pr); err != nil {
			return err
		}
		set := 0
		for _, m := range Metrics {
			switch v := p.Targets[pr].Minutes(m); {
			case v < 0 || v > maxTargetMinutes:
				return errs.Errorf(errs.ErrInvalid, "targets.%s.%s: minutes between 1 and %d", pr, m, maxTargetMinutes)
			case v > 0:
				set++
			}
		}
		if set == 0 {
			return errs.Errorf(errs.ErrInvalid, "targets.%s: no target set (first_response, next_response or resolution)", pr)
		}
	}
	return nil
}

// Ticket is what policy conditions look at.
type Ticket struct {
	Priority string
	Tags     []string
	GroupID  *uuid.UUID
}

// Matches reports whether every condition holds for t.
func (c Conditions) Matches(t Ticket) bool {
	if len(c.Priority) > 0 && !slices.Contains(c.Priority, t.Priority) {
		return false
	}
	if len(c.Tags) > 0 && !slices.ContainsFunc(c.Tags, func(tag string) bool { return slices.Contains(t.Tags, tag) }) {
		return false
	}
	return c.GroupID == nil || (t.GroupID != nil && *t.GroupID == *c.GroupID)
}

// Match returns the policy that applies to t: among those whose conditions
// hold, the one with the lowest Position, the earlier in the slice on a tie
// (first match wins). It returns nil if none applies. The result points
// into policies.
func Match(policies []Policy, t Ticket) *Policy {
	var best *Policy
	for i := range policies {
		p := &policies[i]
		if (best == nil || p.Position < best.Position) && p.Conditions.Matches(t) {
			best = p
		}
	}
	return best
}
