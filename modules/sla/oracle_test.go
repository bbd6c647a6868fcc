package sla_test

import (
	"strconv"
	"time"

	"github.com/patchdesk/patchdesk/modules/sla"
)

// oracle is an independent, slow model of a calendar used to check
// Schedule: it walks real time minute by minute. By the definition in
// Schedule's documentation (a boundary is the first instant the wall clock
// shows that time or later), an instant is working time exactly when the
// running maximum of the wall clock up to it lies in a working interval of
// its date. All zone offsets since 1972 are whole minutes, so a minute grid
// is exact for minute-aligned instants.
type oracle struct {
	loc       *time.Location
	week      [7][][2]int // minutes of the day, by time.Weekday
	holidays  map[string]bool
	recurring map[string]bool
	off       map[int64]bool // wall days off (holidays), memoised
}

func newOracle(cal sla.Calendar) oracle {
	loc, err := time.LoadLocation(cal.TimeZone)
	if err != nil {
		panic(err)
	}
	o := oracle{loc: loc, holidays: map[string]bool{}, recurring: map[string]bool{}, off: map[int64]bool{}}
	keys := map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
		"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
	if cal.Hours == nil {
		for d := range o.week {
			o.week[d] = [][2]int{{0, 1440}}
		}
	}
	for key, ivs := range cal.Hours {
		for _, iv := range ivs {
			o.week[keys[key]] = append(o.week[keys[key]], [2]int{minutes(iv[0]), minutes(iv[1])})
		}
	}
	for _, h := range cal.Holidays {
		if len(h) == 7 {
			o.recurring[h[2:]] = true
		} else {
			o.holidays[h] = true
		}
	}
	return o
}

func minutes(hhmm string) int {
	h, _ := strconv.Atoi(hhmm[:2])
	m, _ := strconv.Atoi(hhmm[3:])
	return h*60 + m
}

// wallWorks reports whether wall minute w (minutes since 1970-01-01 00:00 wall time) is working.
func (o oracle) wallWorks(w int64) bool {
	day, m := w/1440, int(w%1440)
	if m < 0 { // before 1970: floor, not truncate
		day, m = day-1, m+1440
	}
	date := time.Unix(day*86400, 0).UTC()
	off, seen := o.off[day]
	if !seen {
		off = o.holidays[date.Format(time.DateOnly)] || o.recurring[date.Format("01-02")]
		o.off[day] = off
	}
	if off {
		return false
	}
	for _, iv := range o.week[date.Weekday()] {
		if iv[0] <= m && m < iv[1] {
			return true
		}
	}
	return false
}

// minutesFrom returns, for each real minute starting at from (minute
// aligned), whether it is working, for n minutes.
func (o oracle) minutesFrom(from time.Time, n int) []bool {
	const warmup = 3 * 1440 // establish the running maximum across any recent fall-back
	start := from.Unix()/60 - warmup
	runMax := int64(-1 << 62)
	out := make([]bool, 0, n)
	for i := 0; i < warmup+n; i++ {
		u := (start + int64(i)) * 60
		_, off := time.Unix(u, 0).In(o.loc).Zone()
		runMax = max(runMax, (u+int64(off))/60)
		if i >= warmup {
			out = append(out, o.wallWorks(runMax))
		}
	}
	return out
}

// count counts the working minutes among the first n of work.
func count(work []bool, n int) time.Duration {
	c := 0
	for _, w := range work[:n] {
		if w {
			c++
		}
	}
	return time.Duration(c) * time.Minute
}

// add returns the end of the minute in which d (whole minutes) of working
// time is complete, scanning at most limit minutes; ok is false if not found.
func (o oracle) add(a time.Time, d time.Duration, limit int) (time.Time, bool) {
	need := int(d / time.Minute)
	if need == 0 {
		return a, true
	}
	for i, w := range o.minutesFrom(a, limit) {
		if w {
			need--
			if need == 0 {
				return a.Add(time.Duration(i+1) * time.Minute), true
			}
		}
	}
	return time.Time{}, false
}
