package sla_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/events"
	"github.com/patchdesk/patchdesk/modules/sla"
)

// A deadline over a long weekend: eight working hours from Thursday
// afternoon before Easter, with Good Friday and Easter Monday off.
func ExampleSchedule_Add() {
	day := [][]string{{"09:00", "12:00"}, {"13:00", "17:00"}} // a lunch break
	s, err := sla.NewSchedule(sla.Calendar{
		TimeZone: "Europe/Berlin",
		Hours:    map[string][][]string{"mon": day, "tue": day, "wed": day, "thu": day, "fri": day},
		Holidays: []string{"2026-04-03", "2026-04-06", "--12-25"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	berlin := s.Location()
	from := time.Date(2026, 4, 2, 15, 0, 0, 0, berlin)
	fmt.Println(s.Add(from, 8*time.Hour).Format("Mon 2006-01-02 15:04"))
	// A deadline met exactly at the end of a shift is that end.
	fmt.Println(s.Add(from, 2*time.Hour).Format("Mon 2006-01-02 15:04"))
	fmt.Println(s.Between(from, time.Date(2026, 4, 8, 0, 0, 0, 0, berlin)))
	// Output:
	// Tue 2026-04-07 16:00
	// Thu 2026-04-02 17:00
	// 9h0m0s
}

// Validation errors name the field; they are errs.ErrInvalid problems (422).
func ExampleNewSchedule() {
	_, err := sla.NewSchedule(sla.Calendar{TimeZone: "Europe/Berlin", Hours: map[string][][]string{
		"mon": {{"09:00", "12:00"}, {"11:00", "17:00"}},
	}})
	fmt.Println(err)
	// Output: validation failed: hours.mon: intervals 09:00–12:00 and 11:00–17:00 overlap
}

// A policy as the API receives it, matched against a ticket.
func ExampleMatch() {
	var policies []sla.Policy
	err := json.Unmarshal([]byte(`[
		{"name": "Everyone", "position": 2, "targets": {"normal": {"first_response": 480}}},
		{"name": "VIP", "position": 1, "conditions": {"tags": ["vip"]},
		 "targets": {"normal": {"first_response": 60, "next_response": 60, "resolution": 480}}, "warn_before": 15}
	]`), &policies)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := sla.Match(policies, sla.Ticket{Priority: "normal", Tags: []string{"vip"}})
	fmt.Println(p.Name, p.Target("normal", sla.FirstResponse), p.PauseWhenPending)
	// Output: VIP 1h0m0s true
}

// Evaluating a timeline: the first reply came late; the customer answered
// and waits for the next reply, whose deadline and warning lie ahead.
func ExampleEvaluate() {
	p := sla.Policy{Name: "Standard", WarnBefore: 10, PauseWhenPending: true,
		Targets: map[string]sla.Targets{"high": {FirstResponse: 60, NextResponse: 30, Resolution: 480}}}
	at := func(hhmm string) time.Time {
		t, _ := time.Parse("2006-01-02 15:04", "2026-03-02 "+hhmm)
		return t
	}
	timeline := []sla.Entry{
		{Type: events.Created, At: at("09:00"), Actor: sla.ActorCustomer, Status: "open", Priority: "high"},
		{Type: events.Commented, At: at("10:30"), Actor: sla.ActorStaff},
		{Type: events.Commented, At: at("11:00"), Actor: sla.ActorCustomer},
	}
	st := sla.Evaluate(timeline, p, sla.AroundTheClock, at("11:05"))
	for _, a := range st.Alerts {
		fmt.Println(a.Metric, a.Kind, a.At.Format("15:04"))
	}
	fmt.Println("next response due", st.NextResponse.DueAt.Format("15:04"), "warning", st.NextResponse.WarnAt.Format("15:04"))
	wake, _ := st.NextWake()
	fmt.Println("wake up at", wake.Format("15:04"))
	// Output:
	// first_response warning 09:50
	// first_response breach 10:00
	// next response due 11:30 warning 11:20
	// wake up at 11:20
}

// A consumer turns a ticket event from Kafka into a timeline entry, telling
// staff from customers by member id.
func ExampleFromChange() {
	msg := []byte(`{"event_id":"e1d2c3b4-a5f6-4789-8abc-def012345678","type":"ticket.commented","version":1,
		"tenant_id":"6f1c2a8e-0d4b-4e0b-9a57-3d2f8e1b7c10","actor_id":"a4e9d2c1-3b5f-4a6e-8d7c-2f1e0b9a8c7d",
		"occurred_at":"2026-11-29T09:30:00Z","data":{"ticket":{"number":42},"event":{"type":"commented",
		"actor_id":"a4e9d2c1-3b5f-4a6e-8d7c-2f1e0b9a8c7d","data":{"internal":false},"created_at":"2026-11-29T09:30:00Z"},
		"comment":{"internal":false},"watchers":[]}}`)
	env, err := events.Decode(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	change, err := env.TicketChange()
	if err != nil {
		fmt.Println(err)
		return
	}
	staff := uuid.MustParse("a4e9d2c1-3b5f-4a6e-8d7c-2f1e0b9a8c7d")
	e := sla.FromChange(change, func(id uuid.UUID) sla.ActorKind {
		if id == staff {
			return sla.ActorStaff
		}
		return sla.ActorCustomer
	})
	fmt.Println(e.Type, e.Actor, e.Internal, e.At.Format(time.RFC3339))
	// Output: commented staff false 2026-11-29T09:30:00Z
}
