package sla

import (
	"math"
	"time"
)

// Civil-date arithmetic on day numbers (days since 1970-01-01 in the
// proleptic Gregorian calendar), so walking a calendar costs integer
// arithmetic instead of a time.Date call per day.

const (
	secondsPerDay  = 86400
	secondsPerWeek = 7 * secondsPerDay
	nanosPerSecond = int64(time.Second)
)

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// daysFromCivil returns the day number of y-m-d (Howard Hinnant's algorithm).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// weekdayOf returns the weekday of a day number (1970-01-01 was a Thursday).
func weekdayOf(day int64) time.Weekday {
	return time.Weekday((day%7 + 7 + 4) % 7)
}

// validDate reports whether y-m-d exists.
func validDate(y int64, m, d int) bool {
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return false
	}
	yy, mm, dd := civilFromDays(daysFromCivil(y, m, d))
	return yy == y && mm == m && dd == d
}

// zone is one stretch of a location's history with a constant UTC offset:
// instants (Unix seconds) in [start, end) show wall time instant+off.
type zone struct {
	start, end, off int64
}

// zoneAt returns the zone in effect at Unix second sec. Unbounded ends are
// math.MinInt64 / math.MaxInt64.
func zoneAt(loc *time.Location, sec int64) zone {
	t := time.Unix(sec, 0).In(loc)
	_, off := t.Zone()
	s, e := t.ZoneBounds()
	z := zone{start: math.MinInt64, end: math.MaxInt64, off: int64(off)}
	if !s.IsZero() {
		z.start = s.Unix()
	}
	if !e.IsZero() {
		z.end = e.Unix()
	}
	return z
}

// wallInstant returns the Unix second at which the wall clock of loc first
// shows a time at or after second sec of day (sec may be 86400: the next
// midnight). This is the one definition every working interval boundary
// uses:
//   - normally the unique instant showing that wall time;
//   - in a spring-forward gap (02:30 on a day that jumps from 02:00 to
//     03:00), the transition instant, when the clock jumps past it;
//   - in an autumn overlap (02:30 shown twice), the first occurrence.
//
// It is monotonic in (day, sec), so a day's intervals stay ordered and
// disjoint in real time; an interval lying wholly inside a gap collapses to
// nothing.
func wallInstant(loc *time.Location, day, sec int64) int64 {
	naive := day*secondsPerDay + sec
	z := zoneAt(loc, naive-zoneAt(loc, naive).off)
	best := int64(math.MaxInt64)
	consider := func(u int64) {
		if u < best {
			best = u
		}
	}
	exact := func(zz zone) {
		if u := naive - zz.off; u >= zz.start && u < zz.end {
			consider(u)
		}
	}
	exact(z)
	if z.start != math.MinInt64 {
		prev := zoneAt(loc, z.start-1)
		exact(prev)
		if z.start+prev.off <= naive && naive < z.start+z.off {
			consider(z.start) // the clock jumps over naive at z.start
		}
	}
	if z.end != math.MaxInt64 {
		next := zoneAt(loc, z.end)
		exact(next)
		if z.end+z.off <= naive && naive < z.end+next.off {
			consider(z.end)
		}
	}
	if best == math.MaxInt64 {
		return naive - z.off // not reached with real zone data
	}
	return best
}
