package sla_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/sla"
)

// officeHours is Monday to Friday 09:00–17:00.
func officeHours(zone string, holidays ...string) sla.Calendar {
	day := [][]string{{"09:00", "17:00"}}
	return sla.Calendar{TimeZone: zone, Hours: map[string][][]string{"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}, Holidays: holidays}
}

func mustSchedule(t testing.TB, cal sla.Calendar) sla.Schedule {
	t.Helper()
	s, err := sla.NewSchedule(cal)
	if err != nil {
		t.Fatalf("NewSchedule(%+v): %v", cal, err)
	}
	return s
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at parses a wall time "2006-01-02 15:04" in loc (the first occurrence when ambiguous is not needed here).
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleAdd(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	ny := mustZone(t, "America/New_York")
	split := sla.Calendar{TimeZone: "Europe/Berlin", Hours: map[string][][]string{
		"mon": {{"13:00", "17:00"}, {"09:00", "12:00"}}, // unsorted on purpose
		"tue": {{"09:00", "12:00"}, {"13:00", "17:00"}},
	}}
	night := sla.Calendar{TimeZone: "Europe/Berlin", Hours: map[string][][]string{
		"sat": {{"20:00", "24:00"}}, "sun": {{"00:00", "04:00"}},
	}}
	sundayEarly := sla.Calendar{TimeZone: "America/New_York", Hours: map[string][][]string{"sun": {{"01:00", "03:00"}}}}
	sundayHalf := sla.Calendar{TimeZone: "America/New_York", Hours: map[string][][]string{"sun": {{"01:30", "02:30"}}}}
	tests := []struct {
		name string
		cal  sla.Calendar
		loc  *time.Location
		from string
		d    time.Duration
		want string
	}{
		{"within a day", officeHours("Europe/Berlin"), berlin, "2026-03-02 10:00", 3 * time.Hour, "2026-03-02 13:00"},
		{"exactly at the end of the shift is that end", officeHours("Europe/Berlin"), berlin, "2026-03-02 09:00", 8 * time.Hour, "2026-03-02 17:00"},
		{"one minute more starts the next day", officeHours("Europe/Berlin"), berlin, "2026-03-02 09:00", 8*time.Hour + time.Minute, "2026-03-03 09:01"},
		{"over the weekend", officeHours("Europe/Berlin"), berlin, "2026-03-06 16:00", 2 * time.Hour, "2026-03-09 10:00"},
		{"from a Saturday", officeHours("Europe/Berlin"), berlin, "2026-03-07 10:00", time.Hour, "2026-03-09 10:00"},
		{"from before opening", officeHours("Europe/Berlin"), berlin, "2026-03-02 06:00", time.Hour, "2026-03-02 10:00"},
		{"zero duration stays put, even off hours", officeHours("Europe/Berlin"), berlin, "2026-03-07 10:00", 0, "2026-03-07 10:00"},
		{"negative duration stays put", officeHours("Europe/Berlin"), berlin, "2026-03-04 10:00", -time.Hour, "2026-03-04 10:00"},
		{"Easter long weekend (Good Friday and Easter Monday)", officeHours("Europe/Berlin", "2026-04-03", "2026-04-06"), berlin,
			"2026-04-02 16:00", 2 * time.Hour, "2026-04-07 10:00"},
		{"recurring Christmas", officeHours("Europe/Berlin", "--12-25", "--12-26"), berlin, "2025-12-24 16:00", 2 * time.Hour, "2025-12-29 10:00"},
		{"recurring Christmas another year", officeHours("Europe/Berlin", "--12-25", "--12-26"), berlin, "2026-12-24 16:00", 2 * time.Hour, "2026-12-28 10:00"},
		{"split shift skips lunch", split, berlin, "2026-03-02 11:00", 2 * time.Hour, "2026-03-02 14:00"},
		{"split shift ends at 12:00 exactly", split, berlin, "2026-03-02 09:00", 3 * time.Hour, "2026-03-02 12:00"},
		{"interval to 24:00 runs into the next day", night, berlin, "2026-03-07 23:00", 2 * time.Hour, "2026-03-08 01:00"},
		{"a week of office hours", officeHours("Europe/Berlin"), berlin, "2026-03-02 09:00", 40 * time.Hour, "2026-03-06 17:00"},
		{"a week from a Sunday ends on Friday at 17:00", officeHours("Europe/Berlin"), berlin, "2026-03-01 12:00", 40 * time.Hour, "2026-03-06 17:00"},
		{"three weeks from a Sunday", officeHours("Europe/Berlin"), berlin, "2026-03-01 12:00", 120 * time.Hour, "2026-03-20 17:00"},
		{"ten weeks of office hours", officeHours("Europe/Berlin"), berlin, "2026-01-05 09:00", 400 * time.Hour, "2026-03-13 17:00"},
		{"spring forward: the 01:00–03:00 shift is one real hour", sundayEarly, ny, "2026-03-08 01:00", 90 * time.Minute, "2026-03-15 01:30"},
		{"fall back: the 01:00–03:00 shift is three real hours", sundayEarly, ny, "2026-11-01 01:00", 150 * time.Minute, "2026-11-01 02:30"},
		{"spring forward: 01:30–02:30 ends when the clock jumps to 03:00", sundayHalf, ny, "2026-03-08 01:30", 30 * time.Minute, "2026-03-08 03:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mustSchedule(t, tc.cal)
			from := at(t, tc.loc, tc.from)
			got := s.Add(from, tc.d)
			if want := at(t, tc.loc, tc.want); !got.Equal(want) {
				t.Fatalf("Add(%s, %s) = %s, want %s", tc.from, tc.d, got, want)
			}
			if tc.d > 0 {
				if b := s.Between(from, got); b != tc.d {
					t.Fatalf("Between(from, Add(from, %s)) = %s", tc.d, b)
				}
			}
		})
	}
}

func TestScheduleFallBackOverlap(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	s := mustSchedule(t, sla.Calendar{TimeZone: "America/New_York", Hours: map[string][][]string{"sun": {{"01:30", "02:30"}}}})
	// 2026-11-01: 01:00–02:00 happens twice. 01:30 is its first occurrence
	// (EDT, 05:30Z); 02:30 happens once (EST, 07:30Z): two real hours.
	start := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)
	end := time.Date(2026, 11, 1, 7, 30, 0, 0, time.UTC)
	if got := s.Between(at(t, ny, "2026-11-01 00:00"), at(t, ny, "2026-11-01 05:00")); got != 2*time.Hour {
		t.Fatalf("working time on the fall-back Sunday = %s, want 2h", got)
	}
	if !s.IsWorking(start) || s.IsWorking(start.Add(-time.Nanosecond)) || !s.IsWorking(end.Add(-time.Nanosecond)) || s.IsWorking(end) {
		t.Fatalf("the shift should be exactly [%s, %s)", start, end)
	}
	if got := s.Add(start, 2*time.Hour); !got.Equal(end) {
		t.Fatalf("Add = %s, want %s", got, end)
	}
}

func TestScheduleDSTDayLengths(t *testing.T) {
	t.Parallel()
	// Around the clock with a holiday, so the calendar walk (not the 24/7
	// shortcut) runs: a day is midnight to midnight on the wall clock, so 23
	// or 25 real hours on the days the clocks change.
	tests := []struct {
		zone, day string
		want      time.Duration
	}{
		{"Europe/Berlin", "2026-03-29", 23 * time.Hour},
		{"Europe/Berlin", "2026-10-25", 25 * time.Hour},
		{"Europe/Berlin", "2026-06-01", 24 * time.Hour},
		{"America/New_York", "2026-03-08", 23 * time.Hour},
		{"America/New_York", "2026-11-01", 25 * time.Hour},
		{"Australia/Lord_Howe", "2026-04-05", 24*time.Hour + 30*time.Minute}, // half-hour DST
		{"Australia/Lord_Howe", "2026-10-04", 23*time.Hour + 30*time.Minute},
		{"Pacific/Apia", "2011-12-30", 0}, // Samoa skipped the whole day
	}
	for _, tc := range tests {
		t.Run(tc.zone+" "+tc.day, func(t *testing.T) {
			t.Parallel()
			s := mustSchedule(t, sla.Calendar{TimeZone: tc.zone, Holidays: []string{"1999-01-01"}})
			loc := mustZone(t, tc.zone)
			d, err := time.Parse(time.DateOnly, tc.day)
			if err != nil {
				t.Fatal(err)
			}
			// Measure from the previous day's noon to the next day's noon, minus the two half days.
			from := time.Date(d.Year(), d.Month(), d.Day()-1, 12, 0, 0, 0, loc)
			to := time.Date(d.Year(), d.Month(), d.Day()+1, 12, 0, 0, 0, loc)
			if got := s.Between(from, to) - 24*time.Hour; got != tc.want {
				t.Fatalf("length of %s = %s, want %s", tc.day, got, tc.want)
			}
		})
	}
}

func TestScheduleIsWorking(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	s := mustSchedule(t, officeHours("Europe/Berlin", "2026-03-04"))
	tests := []struct {
		at   time.Time
		want bool
	}{
		{at(t, berlin, "2026-03-02 09:00"), true},
		{at(t, berlin, "2026-03-02 09:00").Add(-time.Nanosecond), false},
		{at(t, berlin, "2026-03-02 17:00").Add(-time.Nanosecond), true},
		{at(t, berlin, "2026-03-02 17:00"), false},
		{at(t, berlin, "2026-03-04 12:00"), false}, // holiday
		{at(t, berlin, "2026-03-07 12:00"), false}, // Saturday
		{at(t, berlin, "2026-03-02 12:00").UTC(), true},
	}
	for _, tc := range tests {
		if got := s.IsWorking(tc.at); got != tc.want {
			t.Errorf("IsWorking(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if !sla.AroundTheClock.IsWorking(at(t, berlin, "2026-03-07 03:00")) {
		t.Error("around the clock, every instant works")
	}
}

func TestScheduleAroundTheClock(t *testing.T) {
	t.Parallel()
	a := time.Date(2026, 3, 29, 0, 30, 0, 0, mustZone(t, "Europe/Berlin"))
	var zero sla.Schedule
	allDays := map[string][][]string{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		allDays[d] = [][]string{{"00:00", "24:00"}}
	}
	for _, s := range []sla.Schedule{zero, sla.AroundTheClock, mustSchedule(t, sla.Calendar{TimeZone: "Europe/Berlin"}),
		mustSchedule(t, sla.Calendar{TimeZone: "Asia/Tokyo", Hours: allDays})} {
		if !s.IsAroundTheClock() {
			t.Fatal("should be around the clock")
		}
		for _, d := range []time.Duration{time.Nanosecond, time.Hour, 5 * time.Hour, 400 * 24 * time.Hour} {
			if got := s.Add(a, d); !got.Equal(a.Add(d)) {
				t.Errorf("Add(%s) = %s, want %s", d, got, a.Add(d))
			}
			if got := s.Between(a, a.Add(d)); got != d {
				t.Errorf("Between = %s, want %s", got, d)
			}
		}
	}
	if mustSchedule(t, officeHours("UTC")).IsAroundTheClock() || mustSchedule(t, sla.Calendar{TimeZone: "UTC", Holidays: []string{"--01-01"}}).IsAroundTheClock() {
		t.Fatal("office hours, or a holiday, is not around the clock")
	}
}

func TestScheduleBetween(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	s := mustSchedule(t, officeHours("Europe/Berlin", "--01-01", "--12-25", "--12-26", "2026-04-03", "2026-04-06"))
	tests := []struct {
		name     string
		from, to string
		want     time.Duration
	}{
		{"same instant", "2026-03-02 10:00", "2026-03-02 10:00", 0},
		{"reversed", "2026-03-03 10:00", "2026-03-02 10:00", 0},
		{"inside a shift", "2026-03-02 10:00", "2026-03-02 12:30", 150 * time.Minute},
		{"a night", "2026-03-02 16:00", "2026-03-03 10:00", 2 * time.Hour},
		{"a weekend", "2026-03-06 17:00", "2026-03-09 09:00", 0},
		{"a week", "2026-03-02 00:00", "2026-03-09 00:00", 40 * time.Hour},
		{"Easter week", "2026-03-30 00:00", "2026-04-13 00:00", 64 * time.Hour},
		// 2026: 261 weekdays; holidays on weekdays: Jan 1 (Thu), Apr 3, Apr 6, Dec 25 (Fri); Dec 26 is a Saturday.
		{"a year", "2026-01-01 00:00", "2027-01-01 00:00", (261 - 4) * 8 * time.Hour},
	}
	for _, tc := range tests {
		if got := s.Between(at(t, berlin, tc.from), at(t, berlin, tc.to)); got != tc.want {
			t.Errorf("%s: Between = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestNewScheduleValidation(t *testing.T) {
	t.Parallel()
	day := func(ivs ...[]string) sla.Calendar {
		return sla.Calendar{TimeZone: "Europe/Berlin", Hours: map[string][][]string{"mon": ivs}}
	}
	tests := []struct {
		name string
		cal  sla.Calendar
		want string
	}{
		{"no zone", sla.Calendar{}, "time_zone is required"},
		{"unknown zone", sla.Calendar{TimeZone: "Mars/Olympus"}, `time_zone "Mars/Olympus" is not a known IANA time zone`},
		{"server zone", sla.Calendar{TimeZone: "Local"}, "depends on the server"},
		{"unknown day", sla.Calendar{TimeZone: "UTC", Hours: map[string][][]string{"monday": {{"09:00", "17:00"}}}}, "hours.monday: unknown day"},
		{"no working time", sla.Calendar{TimeZone: "UTC", Hours: map[string][][]string{}}, "no working time"},
		{"only empty days", sla.Calendar{TimeZone: "UTC", Hours: map[string][][]string{"mon": {}}}, "no working time"},
		{"one value", day([]string{"09:00"}), "hours.mon[0]: an interval is a pair"},
		{"three values", day([]string{"09:00", "12:00", "17:00"}), "hours.mon[0]: an interval is a pair"},
		{"single digit hour", day([]string{"9:00", "17:00"}), `hours.mon[0]: start "9:00" is not a time of day`},
		{"hour 25", day([]string{"09:00", "25:00"}), `hours.mon[0]: end "25:00" is not a time of day`},
		{"minute 60", day([]string{"09:60", "17:00"}), `start "09:60"`},
		{"24:30", day([]string{"09:00", "24:30"}), `end "24:30"`},
		{"start at 24:00", day([]string{"24:00", "24:00"}), `start "24:00"`},
		{"letters", day([]string{"ab:cd", "17:00"}), `start "ab:cd"`},
		{"end before start", day([]string{"17:00", "09:00"}), "hours.mon[0]: end 09:00 is not after start 17:00"},
		{"empty interval", day([]string{"09:00", "09:00"}), "end 09:00 is not after start 09:00"},
		{"overlap", day([]string{"09:00", "12:00"}, []string{"11:00", "17:00"}), "hours.mon: intervals 09:00–12:00 and 11:00–17:00 overlap"},
		{"overlap unsorted", day([]string{"11:00", "17:00"}, []string{"09:00", "12:00"}), "intervals 09:00–12:00 and 11:00–17:00 overlap"},
		{"bad holiday", sla.Calendar{TimeZone: "UTC", Holidays: []string{"2026-02-30"}}, `holidays[0]: "2026-02-30" is not a date`},
		{"short holiday", sla.Calendar{TimeZone: "UTC", Holidays: []string{"2026-01-01", "2026-2-3"}}, `holidays[1]: "2026-2-3"`},
		{"bad recurring holiday", sla.Calendar{TimeZone: "UTC", Holidays: []string{"--13-01"}}, `holidays[0]: "--13-01"`},
		{"too many intervals", day(repeat([]string{"09:00", "10:00"}, 25)...), "at most 24 intervals"},
		{"too many holidays", sla.Calendar{TimeZone: "UTC", Holidays: make([]string, 1001)}, "at most 1000"},
		{"too many recurring holidays", sla.Calendar{TimeZone: "UTC", Holidays: recurringDays(101)}, "at most 100 recurring dates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sla.NewSchedule(tc.cal)
			if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSchedule = %v, want an ErrInvalid problem containing %q", err, tc.want)
			}
		})
	}
	// Adjacent intervals, 24:00 ends, leap-day recurring holidays are fine.
	for _, cal := range []sla.Calendar{
		day([]string{"09:00", "12:00"}, []string{"12:00", "17:00"}),
		day([]string{"22:00", "24:00"}, []string{"00:00", "06:00"}),
		{TimeZone: "UTC", Holidays: []string{"--02-29", "2028-02-29", "2028-02-29"}},
	} {
		if _, err := sla.NewSchedule(cal); err != nil {
			t.Errorf("NewSchedule(%+v): %v", cal, err)
		}
	}
}

func repeat(iv []string, n int) [][]string {
	out := make([][]string, n)
	for i := range out {
		out[i] = iv
	}
	return out
}

func TestScheduleLeapDayHoliday(t *testing.T) {
	t.Parallel()
	s := mustSchedule(t, sla.Calendar{TimeZone: "UTC", Holidays: []string{"--02-29"}})
	leap := time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)
	if s.IsWorking(leap.Add(time.Hour)) || !s.IsWorking(leap.AddDate(0, 0, 1)) {
		t.Fatal("29 February is off in a leap year")
	}
	// A year from 2027-03-01 holds one 29 February; one from 2025-03-01 none.
	if got := s.Between(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)); got != 365*24*time.Hour {
		t.Fatalf("2027-03 to 2028-03 = %s", got)
	}
	if got := s.Between(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); got != 365*24*time.Hour {
		t.Fatalf("2025-03 to 2026-03 = %s", got)
	}
	// Far from today (recurring dates are precomputed for 1970–2129 only):
	// 2200 is no leap year, so 2197-03 to 2205-03 holds one 29 February (2204).
	from, to := time.Date(2197, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2205, 3, 1, 0, 0, 0, 0, time.UTC)
	if got, want := s.Between(from, to), to.Sub(from)-24*time.Hour; got != want {
		t.Fatalf("2197-03 to 2205-03 = %s, want %s", got, want)
	}
	if got := s.Add(time.Date(2204, 2, 28, 23, 0, 0, 0, time.UTC), 2*time.Hour); !got.Equal(time.Date(2204, 3, 1, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("Add over 2204-02-29 = %s", got)
	}
	if got := s.Between(time.Date(2204, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2204, 3, 1, 0, 0, 0, 0, time.UTC)); got != 0 {
		t.Fatalf("2204-02-29 = %s of work", got)
	}
	if got := s.Between(time.Date(1960, 2, 28, 0, 0, 0, 0, time.UTC), time.Date(1960, 3, 1, 0, 0, 0, 0, time.UTC)); got != 24*time.Hour {
		t.Fatalf("1960-02-28 to 1960-03-01 = %s", got)
	}
	// Across the end of the precomputed years.
	newYear := mustSchedule(t, sla.Calendar{TimeZone: "UTC", Holidays: []string{"--01-01"}})
	from, to = time.Date(2129, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2130, 2, 1, 0, 0, 0, 0, time.UTC)
	if got, want := newYear.Between(from, to), to.Sub(from)-24*time.Hour; got != want {
		t.Fatalf("December 2129 and January 2130 = %s, want %s", got, want)
	}
}

func recurringDays(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC).Format("--01-02")
	}
	return out
}
