// Package sla is the pure core of PatchDesk's service-level agreements:
// business-hours calendars, SLA policies, and the clocks that turn a
// ticket's timeline into deadlines, warnings and breaches. It touches no
// database and keeps no state; the integration stores policies, calendars
// and the computed State, and schedules jobs from it.
//
// # Schedules
//
// A Schedule is a business-hours calendar built from a Calendar (an IANA
// time zone, working intervals per weekday, holidays) by NewSchedule, or
// AroundTheClock (the zero value), where working time is calendar time. It
// answers Add (the instant at which some working time has elapsed),
// Between (the working time in [a, b)) and IsWorking.
//
// Conventions:
//   - Intervals are half-open wall-clock times of the zone: 09:00–17:00
//     includes 09:00 and excludes 17:00. An interval may end at 24:00 but
//     not cross midnight. Holidays are whole wall-clock days.
//   - A boundary is the first instant at which the wall clock shows that
//     time or later. On the day clocks go forward (Berlin 02:00 → 03:00), a
//     shift over the gap is an hour shorter in real time (00:00–08:00 is
//     seven hours) and a boundary inside the gap is the jump itself; on
//     the day they go back (03:00 → 02:00) a shift over the repeated hour
//     is an hour longer (nine hours) and a boundary inside it is its first
//     occurrence. A 09:00–17:00 day is eight hours either way, since the
//     clocks change at night in Europe and North America.
//   - Add(from, d) is the earliest instant t with Between(from, t) == d, so
//     a deadline reached exactly at the end of a shift is that end (17:00
//     Friday, not 09:00 Monday), and for d > 0 it is never inside a
//     non-working period. Add(from, d) for d <= 0 is from.
//   - Between is additive, and Between(a, Add(a, d)) == d; around the
//     clock, Add(a, d) == a.Add(d). Instants are nanosecond-exact within
//     the years 1678–2262.
//   - Walks skip whole weeks without holidays or clock changes, so a
//     deadline months away costs about as much as one a day away.
//
// # Policies and clocks
//
// A Policy selects tickets by Conditions (Match: lowest position first,
// first match wins) and gives, per priority, targets in minutes for three
// metrics: FirstResponse, NextResponse and Resolution. Evaluate replays a
// ticket's timeline (Entry values, built from the events contract with
// FromTimeline, FromReplayed or FromChange) under a policy and its schedule
// at an instant, and returns a State: per metric the target, due_at,
// warn_at, paused, achieved_at, warned_at and breached_at of its current
// cycle, and every Alert (warning or breach) reached so far. The rules are
// listed on Evaluate; in short, pending pauses the clocks (if the policy
// says so) until the status changes or the customer replies, solving stops
// them, a reopen continues resolution where it stopped, and a priority
// change re-targets from the original start.
//
// DueAt is the first instant at which a metric is breached unless achieved
// before: a reply at that very instant is late. Alerts are computed, not
// observed: an alert's At is the instant its point was reached, and no
// later entry removes or moves it, so (metric, kind, cycle) identifies each
// for recording exactly once, however late a job or scan runs.
//
// The integration matches a policy against the ticket, evaluates its
// timeline in the transaction that changes it, stores the State, schedules
// a job at State.NextWake, and on that job (or a periodic scan) records the
// State.Alerts it has not recorded yet.
package sla
