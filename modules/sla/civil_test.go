package sla

import (
	"testing"
	"time"
)

func TestCivilDays(t *testing.T) {
	t.Parallel()
	for day := int64(-800000); day <= 800000; day += 37 {
		want := time.Unix(day*secondsPerDay, 0).UTC()
		y, m, d := civilFromDays(day)
		if y != int64(want.Year()) || m != int(want.Month()) || d != want.Day() {
			t.Fatalf("civilFromDays(%d) = %d-%d-%d, want %s", day, y, m, d, want)
		}
		if got := daysFromCivil(y, m, d); got != day {
			t.Fatalf("daysFromCivil(%d-%d-%d) = %d, want %d", y, m, d, got, day)
		}
		if weekdayOf(day) != want.Weekday() {
			t.Fatalf("weekdayOf(%d) = %s, want %s", day, weekdayOf(day), want.Weekday())
		}
	}
	if validDate(2026, 2, 29) || !validDate(2028, 2, 29) || validDate(2026, 4, 31) || !validDate(2000, 2, 29) || validDate(1900, 2, 29) {
		t.Fatal("validDate")
	}
}

// TestFastDaysAgreeWithWallInstant checks the shortcut daySpans takes on
// ordinary days (real time = wall time minus one offset) against the exact
// boundary rule, for every day of 1995–2040 in zones with odd histories, with
// a boundary every 30 minutes of the day.
func TestFastDaysAgreeWithWallInstant(t *testing.T) {
	t.Parallel()
	var tmpl []interval // adjacent intervals: a boundary every 30 minutes, 00:00 to 24:00
	for m := int64(0); m < 1440; m += 30 {
		tmpl = append(tmpl, interval{m * 60, (m + 30) * 60})
	}
	for _, name := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
		"America/Havana", "America/Sao_Paulo", "Antarctica/Troll", "Pacific/Apia", "Africa/Casablanca"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			loc, err := time.LoadLocation(name)
			if err != nil {
				t.Fatal(err)
			}
			c := &compiled{loc: loc}
			for d := range c.week {
				c.week[d] = tmpl
			}
			first, last := daysFromCivil(1995, 1, 1), daysFromCivil(2040, 12, 31)
			w, _ := c.walkFrom(first * secondsPerDay * nanosPerSecond)
			fast := 0
			for day := first; day <= last; day++ {
				if !w.fits(day) {
					continue
				}
				fast++
				got := w.spans(day, nil)
				// Every boundary near a time change; elsewhere midnight to midnight.
				check := []int{0, len(tmpl) - 1}
				if nearChange(loc, day) {
					check = check[:0]
					for i := range tmpl {
						check = append(check, i)
					}
				}
				for _, i := range check {
					iv := tmpl[i]
					want := span{wallInstant(loc, day, iv.start) * nanosPerSecond, wallInstant(loc, day, iv.end) * nanosPerSecond}
					if got[i] != want {
						y, m, dd := civilFromDays(day)
						t.Fatalf("%d-%02d-%02d interval %d: fast %v, exact %v", y, m, dd, i, got[i], want)
					}
				}
			}
			if fast < 15000 {
				t.Fatalf("only %d ordinary days: the shortcut is hardly used", fast)
			}
		})
	}
}

// nearChange reports whether loc changes its offset within three days of day.
func nearChange(loc *time.Location, day int64) bool {
	z := zoneAt(loc, day*secondsPerDay)
	const margin = 3 * secondsPerDay
	return z.start > day*secondsPerDay-margin || z.end < day*secondsPerDay+margin
}
