package bus

import (
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/events"
)

// ErrPoison marks a handler failure that is deterministic: the message itself
// is wrong, so the same message fails the same way every time. Wrap with Poison.
var ErrPoison = errors.New("poison message")

// Poison wraps err so the consumer dead-letters the message (after its
// bounded attempts) instead of retrying it without limit.
func Poison(err error) error {
	if err == nil {
		return nil
	}
	return errors.Join(ErrPoison, err)
}

// Class is what the consumer does with a handler failure.
type Class int

// Failure classes.
const (
	// Retry without limit, with capped backoff, holding the partition: the
	// failure is in the infrastructure (database, broker, network) or unknown.
	Retry Class = iota
	// DeadLetter after the bounded attempts: the message cannot succeed.
	DeadLetter
	// DeadLetterNow skips the remaining attempts: retrying cannot even be tried
	// (undecodable payload, ErrPermanent).
	DeadLetterNow
)

func (c Class) String() string {
	switch c {
	case DeadLetter:
		return "dead_letter"
	case DeadLetterNow:
		return "dead_letter_now"
	}
	return "retry"
}

// Classify sorts a handler error. An undecodable payload is poison before
// anything else (decoding does no I/O, and a truncated payload's io.EOF must
// not read as a broken connection); otherwise infrastructure failures win over
// a poison mark, because a handler that hit a dead connection while
// validating cannot know its verdict is right. Only deterministic failures
// are dead-lettered:
// an error nobody classified is retried, since dead-lettering it would drop
// the side effect silently while a stalled partition shows on the lag and
// "retrying" gauges.
func Classify(err error) Class {
	switch {
	case err == nil:
		return Retry
	case errors.Is(err, ErrPermanent), errors.Is(err, events.ErrMalformed), isDecodeError(err):
		return DeadLetterNow
	case IsTransient(err):
		return Retry
	case errors.Is(err, ErrPoison), errors.Is(err, errs.ErrInvalid), errors.Is(err, errs.ErrInvalidInput),
		refusedByDatabase(err), errors.Is(err, pgx.ErrNoRows):
		return DeadLetter
	}
	return Retry
}

// refusedByDatabase reports a PostgreSQL error that the same message will
// meet every time: a value refused (class 22, integrity class 23), a
// program limit (class 54, e.g. an oversized tsvector) or a statement the
// database cannot run as written (class 42). Retrying those without limit
// would hold the partition, and every tenant behind it, for good.
func refusedByDatabase(err error) bool {
	switch errs.SQLClass(errs.SQLState(err)) {
	case "22", "23", "42", "54":
		return true
	}
	return false
}

// IsTransient is errs.IsTransient plus the broker's own retriable errors.
func IsTransient(err error) bool {
	if errs.IsTransient(err) {
		return true
	}
	var kerr kafka.Error
	return errors.As(err, &kerr) && (kerr.Temporary() || kerr.Timeout())
}

func isDecodeError(err error) bool {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syntax) || errors.As(err, &typ)
}
