package bus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/bus"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/events"
)

// TestClassify: only deterministic failures are dead-lettered; infrastructure
// and unknown failures hold the partition and retry.
func TestClassify(t *testing.T) {
	t.Parallel()
	_, malformed := events.Decode([]byte(`{"id":`))
	syntax := json.Unmarshal([]byte(`{`), &struct{}{})
	refused := refusedConnection(t)
	cases := []struct {
		name string
		err  error
		want bus.Class
	}{
		{"undecodable event", malformed, bus.DeadLetterNow},
		{"JSON syntax error", syntax, bus.DeadLetterNow},
		{"ErrPermanent", errors.Join(bus.ErrPermanent, errors.New("x")), bus.DeadLetterNow},
		{"explicit poison", bus.Poison(errors.New("no such ticket type")), bus.DeadLetter},
		{"validation error", fmt.Errorf("handle: %w", errs.Errorf(errs.ErrInvalid, "bad")), bus.DeadLetter},
		{"PostgreSQL unreachable", refused, bus.Retry},
		{"poison mark over a dead connection", bus.Poison(refused), bus.Retry},
		{"broker: leader not available", fmt.Errorf("write: %w", kafka.LeaderNotAvailable), bus.Retry},
		{"unknown failure", errors.New("something odd"), bus.Retry},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		if got := bus.Classify(c.err); got != c.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
