package sla_test

import (
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/sla"
)

// germanHolidays: Berlin's public holidays 2026–2027, plus recurring ones.
var germanHolidays = []string{
	"--01-01", "--05-01", "--10-03", "--12-25", "--12-26", "--03-08",
	"2026-04-03", "2026-04-06", "2026-05-14", "2026-05-25", "2027-03-26", "2027-03-29", "2027-05-06", "2027-05-17",
}

// starts returns n instants spread over 2026, so benchmarks do not reuse one path.
func starts(n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 8761 * time.Second * 7)
	}
	return out
}

func BenchmarkScheduleAdd(b *testing.B) {
	cases := []struct {
		name string
		s    sla.Schedule
		d    time.Duration
	}{
		{"office-hours/8h", mustSchedule(b, officeHours("Europe/Berlin", germanHolidays...)), 8 * time.Hour},
		{"office-hours/30-working-days", mustSchedule(b, officeHours("Europe/Berlin", germanHolidays...)), 30 * 8 * time.Hour},
		{"office-hours/30-days-of-working-time", mustSchedule(b, officeHours("Europe/Berlin", germanHolidays...)), 30 * 24 * time.Hour},
		{"split-shift-new-york/30-working-days", mustSchedule(b, sla.Calendar{TimeZone: "America/New_York", Hours: map[string][][]string{
			"mon": {{"08:00", "12:00"}, {"13:00", "17:00"}}, "tue": {{"08:00", "12:00"}, {"13:00", "17:00"}}, "wed": {{"08:00", "12:00"}, {"13:00", "17:00"}},
			"thu": {{"08:00", "12:00"}, {"13:00", "17:00"}}, "fri": {{"08:00", "12:00"}, {"13:00", "17:00"}}, "sat": {{"10:00", "14:00"}},
		}, Holidays: []string{"--07-04", "--12-25", "--01-01", "2026-11-26", "2026-09-07"}}), 30 * 8 * time.Hour},
		{"around-the-clock/30-days", sla.AroundTheClock, 30 * 24 * time.Hour},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			from := starts(512)
			i := 0
			defer reportCPU(b)()
			for b.Loop() {
				c.s.Add(from[i%len(from)], c.d)
				i++
			}
		})
	}
}

func BenchmarkScheduleBetween(b *testing.B) {
	s := mustSchedule(b, officeHours("Europe/Berlin", germanHolidays...))
	for _, span := range []struct {
		name string
		d    time.Duration
	}{{"1-day", 24 * time.Hour}, {"30-days", 30 * 24 * time.Hour}, {"1-year", 365 * 24 * time.Hour}} {
		b.Run(span.name, func(b *testing.B) {
			from := starts(512)
			i := 0
			defer reportCPU(b)()
			for b.Loop() {
				a := from[i%len(from)]
				s.Between(a, a.Add(span.d))
				i++
			}
		})
	}
}

// busyTimeline is a 200-entry history: replies back and forth, pending
// spans, a priority change, a resolve and a reopen.
func busyTimeline() []sla.Entry {
	at := time.Date(2026, 3, 2, 8, 13, 0, 0, time.UTC)
	tl := []sla.Entry{{Type: events.Created, At: at, Actor: sla.ActorCustomer, Status: "open", Priority: "high"}}
	status := "open"
	setStatus := func(to string) {
		tl = append(tl, sla.Entry{Type: events.StatusChanged, At: at, Actor: sla.ActorStaff, Before: status, After: to})
		status = to
	}
	for i := 0; len(tl) < 200; i++ {
		at = at.Add(time.Duration(17+i%5*41) * time.Minute)
		switch i % 10 {
		case 0, 3, 6:
			tl = append(tl, sla.Entry{Type: events.Commented, At: at, Actor: sla.ActorStaff})
		case 1, 4, 8:
			tl = append(tl, sla.Entry{Type: events.Commented, At: at, Actor: sla.ActorCustomer})
		case 2:
			tl = append(tl, sla.Entry{Type: events.Commented, At: at, Actor: sla.ActorStaff, Internal: true})
		case 5:
			setStatus("pending")
		case 7:
			setStatus("open")
		case 9:
			if i%20 == 9 {
				setStatus("resolved")
				at = at.Add(time.Hour)
				setStatus("open")
			} else {
				tl = append(tl, sla.Entry{Type: events.PriorityChanged, At: at, Actor: sla.ActorStaff, Before: "high", After: "high"})
			}
		}
	}
	return tl[:200]
}

func BenchmarkEvaluate(b *testing.B) {
	tl := busyTimeline()
	now := tl[len(tl)-1].At.Add(time.Hour)
	p := testPolicy()
	for _, c := range []struct {
		name string
		s    sla.Schedule
	}{
		{"200-entries/around-the-clock", sla.AroundTheClock},
		{"200-entries/office-hours", mustSchedule(b, officeHours("Europe/Berlin", germanHolidays...))},
	} {
		b.Run(c.name, func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				sla.Evaluate(tl, p, c.s, now)
			}
		})
	}
}

// BenchmarkNewSchedule: compiling a calendar (recurring holidays are
// expanded for 160 years), which the integration should cache per calendar
// version rather than repeat per ticket.
func BenchmarkNewSchedule(b *testing.B) {
	cal := officeHours("Europe/Berlin", germanHolidays...)
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := sla.NewSchedule(cal); err != nil {
			b.Fatal(err)
		}
	}
}
