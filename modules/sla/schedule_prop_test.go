package sla_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/sla"
)

// zones with every kind of time change: ordinary DST, half-hour DST
// (Lord_Howe), changes at midnight (Santiago, Havana, Sao_Paulo until 2019),
// a two-hour change (Troll), odd offsets (Chatham, St_Johns, Kolkata),
// Casablanca's Ramadan changes, Apia skipping a whole day in 2011.
var propZones = []string{
	"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "America/Havana",
	"America/Sao_Paulo", "Antarctica/Troll", "Pacific/Chatham", "America/St_Johns", "Asia/Kolkata",
	"Africa/Casablanca", "Pacific/Apia", "Europe/London", "UTC",
}

// seeds returns a fixed seed and a fresh one; a failing subtest names its seed.
func seeds() []uint64 { return []uint64{20260329, uint64(time.Now().UnixNano())} }

type gen struct{ r *rand.Rand }

func newGen(seed uint64) gen { return gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// calendar returns a random valid calendar: split shifts, shifts ending at
// 24:00, shifts in the small hours (where clocks change), holidays.
func (g gen) calendar() sla.Calendar {
	cal := sla.Calendar{TimeZone: propZones[g.r.IntN(len(propZones))]}
	if g.r.IntN(10) > 0 {
		cal.Hours = map[string][][]string{}
		for _, day := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			if g.r.IntN(10) < 3 {
				continue
			}
			// Boundaries on a 15-minute grid, biased to the small hours half the time.
			n := 2 * (1 + g.r.IntN(3))
			set := map[int]bool{}
			for len(set) < n {
				m := g.r.IntN(97) * 15
				if g.r.IntN(2) == 0 {
					m = g.r.IntN(17) * 15 // 00:00–04:00
				}
				set[m] = true
			}
			bounds := make([]int, 0, n)
			for m := range set {
				bounds = append(bounds, m)
			}
			slices.Sort(bounds)
			if g.r.IntN(3) == 0 {
				bounds[n-1] = 1440 // often end at 24:00
			}
			if g.r.IntN(3) == 0 {
				bounds[0] = 0
			}
			for i := 0; i < n; i += 2 {
				cal.Hours[day] = append(cal.Hours[day], []string{hhmm(bounds[i]), hhmm(bounds[i+1])})
			}
		}
		if len(cal.Hours) == 0 {
			cal.Hours["wed"] = [][]string{{"09:00", "17:00"}}
		}
	}
	for range g.r.IntN(12) {
		d := time.Date(2010+g.r.IntN(21), time.January, 1+g.r.IntN(365), 0, 0, 0, 0, time.UTC)
		cal.Holidays = append(cal.Holidays, d.Format(time.DateOnly))
	}
	for range g.r.IntN(4) {
		d := time.Date(2024, time.January, 1+g.r.IntN(366), 0, 0, 0, 0, time.UTC) // 2024 is a leap year
		cal.Holidays = append(cal.Holidays, "--"+d.Format("01-02"))
	}
	return cal
}

func hhmm(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// instant returns a random instant in 2010–2030, to the nanosecond.
func (g gen) instant() time.Time {
	lo := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	hi := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	return time.Unix(0, lo+g.r.Int64N(hi-lo))
}

// nearChange returns a random minute-aligned instant within three days of a
// time change of loc in a random year (or anywhere, for zones without one).
func (g gen) nearChange(loc *time.Location) time.Time {
	t := time.Unix(g.instant().Unix()/60*60, 0).In(loc)
	start, end := t.ZoneBounds()
	pick := end
	if g.r.IntN(2) == 0 || end.IsZero() {
		pick = start
	}
	if pick.IsZero() {
		return t
	}
	// Bounds may be odd seconds (tzdata tables end at 2038-01-19 03:14:07 UTC).
	return time.Unix(pick.Unix()/60*60, 0).In(loc).Add(time.Duration(g.r.IntN(6*1440)-3*1440) * time.Minute)
}

// duration returns a working duration up to max, to the nanosecond half the time.
func (g gen) duration(maxD time.Duration) time.Duration {
	if g.r.IntN(2) == 0 {
		return time.Duration(1 + g.r.Int64N(int64(maxD/time.Minute))*int64(time.Minute))
	}
	return time.Duration(1 + g.r.Int64N(int64(maxD)))
}

func TestScheduleProperties(t *testing.T) {
	t.Parallel()
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			g := newGen(seed)
			for range 300 {
				cal := g.calendar()
				s := mustSchedule(t, cal)
				a := g.instant().In(s.Location())
				d1, d2 := g.duration(90*24*time.Hour), g.duration(90*24*time.Hour)
				d1, d2 = min(d1, d2), max(d1, d2)
				r1, r2 := s.Add(a, d1), s.Add(a, d2)
				where := fmt.Sprintf("calendar %+v, a=%s (%d), d1=%s d2=%s", cal, a, a.UnixNano(), d1, d2)
				if got := s.Between(a, r1); got != d1 {
					t.Fatalf("Between(a, Add(a, d1)) = %s, want d1; %s", got, where)
				}
				if got := s.Between(a, r2); got != d2 {
					t.Fatalf("Between(a, Add(a, d2)) = %s, want d2; %s", got, where)
				}
				if r2.Before(r1) {
					t.Fatalf("Add not monotonic: %s > %s; %s", r1, r2, where)
				}
				// The result is the earliest such instant, inside or at the end of working time.
				if !r1.After(a) || !s.IsWorking(r1.Add(-time.Nanosecond)) || s.Between(a, r1.Add(-time.Nanosecond)) != d1-time.Nanosecond {
					t.Fatalf("Add(a, d1) = %s does not end working time; %s", r1, where)
				}
				if got := s.Add(r1, d2-d1); d2 > d1 && !got.Equal(r2) {
					t.Fatalf("Add(Add(a, d1), d2-d1) = %s, want Add(a, d2) = %s; %s", got, r2, where)
				}
				b := a.Add(time.Duration(g.r.Int64N(int64(400 * 24 * time.Hour))))
				c := b.Add(time.Duration(g.r.Int64N(int64(400 * 24 * time.Hour))))
				if ab, bc, ac := s.Between(a, b), s.Between(b, c), s.Between(a, c); ab+bc != ac {
					t.Fatalf("Between not additive: %s + %s != %s (b=%s c=%s); %s", ab, bc, ac, b, c, where)
				}
				if got := sla.AroundTheClock.Add(a, d1); !got.Equal(a.Add(d1)) {
					t.Fatalf("around the clock Add = %s, want %s", got, a.Add(d1))
				}
			}
		})
	}
}

// TestScheduleMatchesOracle compares Add, Between and IsWorking with the
// minute-by-minute oracle around real time changes of many zones.
func TestScheduleMatchesOracle(t *testing.T) {
	t.Parallel()
	for _, seed := range seeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			g := newGen(seed)
			for range 60 {
				cal := g.calendar()
				s, o := mustSchedule(t, cal), newOracle(cal)
				a := g.nearChange(o.loc)
				const window = 4 * 1440
				work := o.minutesFrom(a, window)
				where := fmt.Sprintf("calendar %+v, a=%s", cal, a)
				for i, w := range work {
					if m := a.Add(time.Duration(i) * time.Minute); s.IsWorking(m) != w {
						t.Fatalf("IsWorking(%s) = %v, oracle %v; %s", m, !w, w, where)
					}
				}
				n := g.r.IntN(window)
				if got, want := s.Between(a, a.Add(time.Duration(n)*time.Minute)), count(work, n); got != want {
					t.Fatalf("Between(a, a+%dm) = %s, oracle %s; %s", n, got, want, where)
				}
				d := time.Duration(1+g.r.IntN(1440)) * time.Minute
				if want, ok := o.add(a, d, 20*1440); ok {
					if got := s.Add(a, d); !got.Equal(want) {
						t.Fatalf("Add(a, %s) = %s, oracle %s; %s", d, got, want, where)
					}
				}
			}
		})
	}
}
