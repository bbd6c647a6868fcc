package tickets

import (
	"slices"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// transitions is the status state machine of DESIGN.md §3. closed → open is
// a reopen, which needs the reopen permission (or a customer reply in the
// reopen window); it is checked by the caller.
var transitions = map[string][]string{
	StatusOpen:       {StatusInProgress, StatusPending, StatusResolved, StatusClosed},
	StatusInProgress: {StatusPending, StatusResolved, StatusOpen},
	StatusPending:    {StatusInProgress, StatusOpen, StatusResolved},
	StatusResolved:   {StatusClosed, StatusOpen},
	StatusClosed:     {StatusOpen},
}

// checkTransition returns a 422 problem unless from → to is allowed.
func checkTransition(from, to string) error {
	if !slices.Contains(Statuses, to) {
		return errs.Errorf(errs.ErrInvalid, "unknown status %q", to)
	}
	if from == to {
		return nil
	}
	if !slices.Contains(transitions[from], to) {
		return errs.Errorf(errs.ErrInvalid, "a %s ticket cannot become %s", from, to)
	}
	return nil
}

// isReopen reports whether from → to reopens a closed ticket.
func isReopen(from, to string) bool { return from == StatusClosed && to == StatusOpen }
