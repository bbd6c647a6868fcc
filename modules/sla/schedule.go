package sla

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the production image (distroless) has no zoneinfo: embed it, so every IANA zone loads

	"github.com/patchdesk/patchdesk/modules/errs"
)

// Limits of a calendar, so a stored calendar stays small and every walk
// over it terminates quickly.
const (
	maxIntervalsPerDay = 24
	maxHolidays        = 1000
	maxRecurring       = 100
)

// Recurring holidays are expanded to dates for the years an SLA clock
// plausibly runs in, so finding the next holiday is one binary search.
const (
	expandFromYear = 1970
	expandToYear   = 2130
)

// weekdayKeys are the keys of Calendar.Hours, indexed by time.Weekday.
var weekdayKeys = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Calendar is the stored, JSON form of business hours (the body of
// POST /calendars without its name). Build a Schedule from it with
// NewSchedule, which validates it.
type Calendar struct {
	// TimeZone is an IANA zone name ("Europe/Berlin"); working hours and
	// holidays are wall-clock times and dates in it.
	TimeZone string `json:"time_zone"`
	// Hours maps "mon".."sun" to that day's working intervals, each a pair
	// ["HH:MM", "HH:MM"] (start inclusive, end exclusive; the end may be
	// "24:00"), e.g. {"mon": [["09:00","12:00"],["13:00","17:00"]]}. A day
	// that is missing or empty is not worked. Nil Hours (absent or null in
	// JSON) means around the clock in TimeZone, which only matters with
	// holidays; an empty non-nil map is refused as having no working time.
	// An interval cannot cross midnight: a night shift is 22:00–24:00 plus
	// 00:00–06:00 of the next day.
	Hours map[string][][]string `json:"hours"`
	// Holidays are whole days off: "YYYY-MM-DD" for one date, "--MM-DD"
	// (the ISO 8601 form without a year) for a date every year; "--02-29"
	// applies in leap years only.
	Holidays []string `json:"holidays"`
}

// interval is a working interval in seconds of the day, [start, end).
type interval struct{ start, end int64 }

// span is a working interval in real time, Unix nanoseconds, [start, end).
type span struct{ start, end int64 }

// monthDay is a recurring holiday.
type monthDay struct{ month, day int }

// compiled is a validated calendar in the form the walks use.
type compiled struct {
	loc          *time.Location
	week         [7][]interval // by time.Weekday
	weekNanos    int64         // wall-clock working time of a week without holidays
	explicitDays []int64       // sorted
	recurList    []monthDay    // sorted
	// expanded holds explicitDays plus every recurring holiday in
	// [expandFrom, expandTo), sorted.
	expanded             []int64
	expandFrom, expandTo int64
	always               bool // every instant works: calendar time
}

// Schedule answers working-time questions for one calendar. The zero value
// works around the clock (calendar time); NewSchedule builds one from a
// Calendar. A Schedule is immutable and safe for concurrent use.
type Schedule struct {
	c *compiled
}

// AroundTheClock is the schedule of a policy without a calendar: every
// instant is working time, so Add is time.Time.Add.
var AroundTheClock = Schedule{}

// NewSchedule validates a calendar and compiles it. Errors are
// errs.ErrInvalid problems naming the offending field.
func NewSchedule(cal Calendar) (Schedule, error) {
	c := &compiled{}
	if err := c.setZone(cal.TimeZone); err != nil {
		return Schedule{}, err
	}
	if err := c.setHours(cal.Hours); err != nil {
		return Schedule{}, err
	}
	if err := c.setHolidays(cal.Holidays); err != nil {
		return Schedule{}, err
	}
	c.always = c.weekNanos == 7*secondsPerDay*nanosPerSecond && len(c.explicitDays) == 0 && len(c.recurList) == 0
	return Schedule{c: c}, nil
}

func (c *compiled) setZone(name string) error {
	if name == "" {
		return errs.Errorf(errs.ErrInvalid, "time_zone is required (an IANA name such as Europe/Berlin)")
	}
	if name == "Local" {
		return errs.Errorf(errs.ErrInvalid, "time_zone %q depends on the server; use an IANA name such as Europe/Berlin", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return errs.Errorf(errs.ErrInvalid, "time_zone %q is not a known IANA time zone", name)
	}
	c.loc = loc
	return nil
}

func (c *compiled) setHours(hours map[string][][]string) error {
	if hours == nil {
		for d := range c.week {
			c.week[d] = []interval{{0, secondsPerDay}}
		}
		c.weekNanos = 7 * secondsPerDay * nanosPerSecond
		return nil
	}
	for key := range hours {
		if !slices.Contains(weekdayKeys[:], key) {
			return errs.Errorf(errs.ErrInvalid, "hours.%s: unknown day; use %s", key, strings.Join(weekdayKeys[:], ", "))
		}
	}
	var total int64
	for d, key := range weekdayKeys {
		ivs, err := parseDay(key, hours[key])
		if err != nil {
			return err
		}
		c.week[d] = ivs
		for _, iv := range ivs {
			total += iv.end - iv.start
		}
	}
	if total == 0 {
		return errs.Errorf(errs.ErrInvalid, "hours: no working time in the week (omit hours for around the clock)")
	}
	c.weekNanos = total * nanosPerSecond
	return nil
}

// parseDay validates one day's intervals and returns them sorted.
func parseDay(key string, raw [][]string) ([]interval, error) {
	if len(raw) > maxIntervalsPerDay {
		return nil, errs.Errorf(errs.ErrInvalid, "hours.%s: at most %d intervals a day", key, maxIntervalsPerDay)
	}
	ivs := make([]interval, 0, len(raw))
	for i, pair := range raw {
		field := fmt.Sprintf("hours.%s[%d]", key, i)
		if len(pair) != 2 {
			return nil, errs.Errorf(errs.ErrInvalid, "%s: an interval is a pair [\"HH:MM\", \"HH:MM\"], got %d values", field, len(pair))
		}
		start, okStart := parseClock(pair[0])
		end, okEnd := parseClock(pair[1])
		switch {
		case !okStart || start == secondsPerDay:
			return nil, errs.Errorf(errs.ErrInvalid, "%s: start %q is not a time of day (HH:MM, 00:00 to 23:59)", field, pair[0])
		case !okEnd:
			return nil, errs.Errorf(errs.ErrInvalid, "%s: end %q is not a time of day (HH:MM, 00:00 to 24:00)", field, pair[1])
		case end <= start:
			return nil, errs.Errorf(errs.ErrInvalid, "%s: end %s is not after start %s (an interval cannot cross midnight)", field, pair[1], pair[0])
		}
		ivs = append(ivs, interval{start, end})
	}
	slices.SortFunc(ivs, func(a, b interval) int { return int(a.start - b.start) })
	for i := 1; i < len(ivs); i++ {
		if ivs[i].start < ivs[i-1].end {
			return nil, errs.Errorf(errs.ErrInvalid, "hours.%s: intervals %s–%s and %s–%s overlap", key,
				clockString(ivs[i-1].start), clockString(ivs[i-1].end), clockString(ivs[i].start), clockString(ivs[i].end))
		}
	}
	return ivs, nil
}

// parseClock reads "HH:MM" (00:00 to 24:00) as seconds of the day.
func parseClock(s string) (int64, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	digits := [4]byte{s[0], s[1], s[3], s[4]}
	for _, b := range digits {
		if b < '0' || b > '9' {
			return 0, false
		}
	}
	h := int64(s[0]-'0')*10 + int64(s[1]-'0')
	m := int64(s[3]-'0')*10 + int64(s[4]-'0')
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*3600 + m*60, true
}

func clockString(sec int64) string { return fmt.Sprintf("%02d:%02d", sec/3600, sec%3600/60) }

func (c *compiled) setHolidays(days []string) error {
	if len(days) > maxHolidays {
		return errs.Errorf(errs.ErrInvalid, "holidays: at most %d dates", maxHolidays)
	}
	for i, s := range days {
		if md, ok := strings.CutPrefix(s, "--"); ok {
			t, err := time.Parse("01-02", md)
			if err != nil || t.Format("01-02") != md {
				return errs.Errorf(errs.ErrInvalid, "holidays[%d]: %q is not a date (YYYY-MM-DD, or --MM-DD for every year)", i, s)
			}
			if md := (monthDay{int(t.Month()), t.Day()}); !slices.Contains(c.recurList, md) {
				if len(c.recurList) == maxRecurring {
					return errs.Errorf(errs.ErrInvalid, "holidays: at most %d recurring dates", maxRecurring)
				}
				c.recurList = append(c.recurList, md)
			}
			continue
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil || t.Format(time.DateOnly) != s {
			return errs.Errorf(errs.ErrInvalid, "holidays[%d]: %q is not a date (YYYY-MM-DD, or --MM-DD for every year)", i, s)
		}
		c.explicitDays = append(c.explicitDays, daysFromCivil(int64(t.Year()), int(t.Month()), t.Day()))
	}
	slices.Sort(c.explicitDays)
	c.explicitDays = slices.Compact(c.explicitDays)
	slices.SortFunc(c.recurList, func(a, b monthDay) int { return (a.month*100 + a.day) - (b.month*100 + b.day) })
	c.expandFrom, c.expandTo = daysFromCivil(expandFromYear, 1, 1), daysFromCivil(expandToYear, 1, 1)
	c.expanded = slices.Clone(c.explicitDays)
	for y := int64(expandFromYear); y < expandToYear && len(c.recurList) > 0; y++ {
		for _, md := range c.recurList {
			if validDate(y, md.month, md.day) {
				c.expanded = append(c.expanded, daysFromCivil(y, md.month, md.day))
			}
		}
	}
	slices.Sort(c.expanded)
	c.expanded = slices.Compact(c.expanded)
	return nil
}

// Location returns the schedule's time zone (UTC around the clock).
func (s Schedule) Location() *time.Location {
	if s.c == nil {
		return time.UTC
	}
	return s.c.loc
}

// IsAroundTheClock reports whether every instant is working time, so
// working time is calendar time.
func (s Schedule) IsAroundTheClock() bool { return s.c == nil || s.c.always }

// IsWorking reports whether t lies in working time. Intervals are
// half-open: 09:00 is working, 17:00 (the end of a 09:00–17:00 shift) is not.
func (s Schedule) IsWorking(t time.Time) bool {
	c := s.c
	if c == nil || c.always {
		return true
	}
	ns := t.UnixNano()
	w, day := c.walkFrom(ns)
	var buf [maxIntervalsPerDay]span
	for d := day - 1; d <= day+1; d++ {
		for _, sp := range w.spans(d, buf[:0]) {
			if sp.start <= ns && ns < sp.end {
				return true
			}
		}
	}
	return false
}

// Add returns the instant at which d of working time has elapsed after
// from: the earliest instant t with Between(from, t) == d. So a deadline
// reached exactly at the end of a shift is that end (17:00), never the
// start of the next shift, and for d > 0 the result is never inside a
// non-working period (it is inside a working interval or at its end).
// Add(from, d) for d <= 0 is from. The result is in from's location.
func (s Schedule) Add(from time.Time, d time.Duration) time.Time {
	c := s.c
	if d <= 0 {
		return from
	}
	if c == nil || c.always {
		return from.Add(d)
	}
	pos, rem := from.UnixNano(), int64(d)
	w, day := c.walkFrom(pos)
	var buf [maxIntervalsPerDay]span
	for first := true; ; first = false {
		if !first {
			// Skip whole weeks while strictly more than a week's work is left,
			// so the answer never falls at the very end of a skipped week.
			if k := w.clearWeeks(day, pos, math.MaxInt64, (rem-1)/c.weekNanos); k > 0 {
				rem -= k * c.weekNanos
				day += 7 * k
				continue
			}
		}
		for _, sp := range w.spans(day, buf[:0]) {
			start := max(sp.start, pos)
			if start >= sp.end {
				continue
			}
			if avail := sp.end - start; avail < rem {
				rem -= avail
				continue
			}
			return time.Unix(0, start+rem).In(from.Location())
		}
		day++
	}
}

// Between returns the working time in [a, b); zero when b is not after a.
// It is additive: Between(a, b) + Between(b, c) == Between(a, c) for a <= b <= c.
func (s Schedule) Between(a, b time.Time) time.Duration {
	c := s.c
	if !b.After(a) {
		return 0
	}
	if c == nil || c.always {
		return b.Sub(a)
	}
	from, to := a.UnixNano(), b.UnixNano()
	w, day := c.walkFrom(from)
	last := c.wallDay(to) + 1
	var (
		buf [maxIntervalsPerDay]span
		sum int64
	)
	for first := true; day <= last; first = false {
		if !first {
			if k := w.clearWeeks(day, from, to, math.MaxInt64); k > 0 {
				sum += k * c.weekNanos
				day += 7 * k
				continue
			}
		}
		for _, sp := range w.spans(day, buf[:0]) {
			if lo, hi := max(sp.start, from), min(sp.end, to); hi > lo {
				sum += hi - lo
			}
		}
		day++
	}
	return time.Duration(sum)
}

// wallDay returns the day number of the wall-clock date at Unix nanosecond ns.
func (c *compiled) wallDay(ns int64) int64 {
	sec := floorDiv(ns, nanosPerSecond)
	_, off := time.Unix(sec, 0).In(c.loc).Zone()
	return floorDiv(sec+int64(off), secondsPerDay)
}

// walk is the state of one walk over the calendar's days: the zone last
// seen and the next holiday, each looked up again only when passed.
type walk struct {
	c *compiled
	z zone
	// No holiday lies in [holFrom, holNext); holNext is one (or MaxInt64).
	holFrom, holNext int64
}

// walkFrom starts a walk at Unix nanosecond ns and returns its wall day.
func (c *compiled) walkFrom(ns int64) (walk, int64) {
	sec := floorDiv(ns, nanosPerSecond)
	w := walk{c: c, z: zoneAt(c.loc, sec), holFrom: math.MaxInt64}
	return w, floorDiv(sec+w.z.off, secondsPerDay)
}

// fits reports whether day lies wholly in the walk's zone, far enough from
// its start that no wall time of the day is ambiguous, looking the zone up
// again once if not. On such a day real time is wall time minus one offset.
func (w *walk) fits(day int64) bool {
	simple := func() bool {
		base := day*secondsPerDay - w.z.off
		return (w.z.start == math.MinInt64 || base >= w.z.start+secondsPerDay) &&
			(w.z.end == math.MaxInt64 || base+secondsPerDay < w.z.end)
	}
	if simple() {
		return true
	}
	w.z = zoneAt(w.c.loc, day*secondsPerDay+secondsPerDay/2-w.z.off)
	return simple()
}

// spans appends the working intervals of day, in real time, to buf.
func (w *walk) spans(day int64, buf []span) []span {
	tmpl := w.c.week[weekdayOf(day)]
	if len(tmpl) == 0 || w.nextHoliday(day) == day {
		return buf
	}
	if w.fits(day) {
		base := day*secondsPerDay - w.z.off
		for _, iv := range tmpl {
			buf = append(buf, span{(base + iv.start) * nanosPerSecond, (base + iv.end) * nanosPerSecond})
		}
		return buf
	}
	// A day touched by a time change: each boundary on its own (wallInstant).
	for _, iv := range tmpl {
		start, end := wallInstant(w.c.loc, day, iv.start), wallInstant(w.c.loc, day, iv.end)
		if end > start {
			buf = append(buf, span{start * nanosPerSecond, end * nanosPerSecond})
		}
	}
	return buf
}

// clearWeeks returns how many whole weeks (at most limit) starting at
// day's midnight lie in [from, to] (Unix nanoseconds), in one zone, with no
// holiday: their working time is exactly k * weekNanos.
func (w *walk) clearWeeks(day, from, to, limit int64) int64 {
	if limit <= 0 || !w.fits(day) {
		return 0
	}
	base := day*secondsPerDay - w.z.off
	if base*nanosPerSecond < from {
		return 0
	}
	if w.z.end != math.MaxInt64 {
		limit = min(limit, (w.z.end-1-base)/secondsPerWeek)
	}
	if to != math.MaxInt64 {
		limit = min(limit, floorDiv(floorDiv(to, nanosPerSecond)-base, secondsPerWeek))
	}
	if h := w.nextHoliday(day); h != math.MaxInt64 {
		limit = min(limit, (h-day)/7)
	}
	return max(limit, 0)
}

// nextHoliday returns the first holiday on or after day, or math.MaxInt64.
func (w *walk) nextHoliday(day int64) int64 {
	if day < w.holFrom || day > w.holNext {
		w.holFrom, w.holNext = day, w.c.nextHoliday(day)
	}
	return w.holNext
}

// nextHoliday returns the first holiday on or after day, or math.MaxInt64.
func (c *compiled) nextHoliday(day int64) int64 {
	if c.expandFrom <= day && day < c.expandTo {
		if i, _ := slices.BinarySearch(c.expanded, day); i < len(c.expanded) && c.expanded[i] < c.expandTo {
			return c.expanded[i]
		}
		day = c.expandTo // none left in the expanded years: look beyond
	}
	return c.computeNextHoliday(day)
}

// computeNextHoliday is nextHoliday outside the expanded years.
func (c *compiled) computeNextHoliday(day int64) int64 {
	next := int64(math.MaxInt64)
	if i, _ := slices.BinarySearch(c.explicitDays, day); i < len(c.explicitDays) {
		next = c.explicitDays[i]
	}
	if len(c.recurList) == 0 {
		return next
	}
	y, _, _ := civilFromDays(day)
	for yy := y; yy <= y+8; yy++ { // --02-29 may wait 8 years (2096 → 2104)
		for _, md := range c.recurList {
			if !validDate(yy, md.month, md.day) {
				continue
			}
			if n := daysFromCivil(yy, md.month, md.day); n >= day {
				return min(next, n)
			}
		}
	}
	return next
}
