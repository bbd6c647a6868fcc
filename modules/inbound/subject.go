package inbound

import (
	"regexp"
	"strconv"
)

// ticketRef matches the "[#123]" PatchDesk puts in the subjects it sends.
var ticketRef = regexp.MustCompile(`\[#([0-9]{1,18})\]`)

// TicketRef returns the ticket number of the first "[#123]" in a subject.
// The pipeline threads on it only when the sender is that ticket's
// requester: anyone can type a number.
func TicketRef(subject string) (number int64, ok bool) {
	m := ticketRef.FindStringSubmatch(subject)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
