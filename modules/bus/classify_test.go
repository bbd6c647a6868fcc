package bus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
		{"value too long (22001)", fmt.Errorf("index: %w", &pgconn.PgError{Code: "22001"}), bus.DeadLetter},
		{"unique violation (23505)", &pgconn.PgError{Code: "23505"}, bus.DeadLetter},
		{"tsvector too long (54000)", &pgconn.PgError{Code: "54000"}, bus.DeadLetter},
		{"undefined column (42703)", &pgconn.PgError{Code: "42703"}, bus.DeadLetter},
		{"row gone", fmt.Errorf("load database: %w", pgx.ErrNoRows), bus.DeadLetter},
		{"admin shutdown (57P01)", &pgconn.PgError{Code: "57P01"}, bus.Retry},
		{"serialization failure (40001)", &pgconn.PgError{Code: "40001"}, bus.Retry},
		{"too many connections (53300)", &pgconn.PgError{Code: "53300"}, bus.Retry},
		{"connection failure (08006)", &pgconn.PgError{Code: "08006"}, bus.Retry},
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
