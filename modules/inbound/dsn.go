package inbound

import (
	"bufio"
	"bytes"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/jhillyerd/enmime/v2"
)

// DeliveryReport is a delivery status notification (RFC 3464: a
// multipart/report with a message/delivery-status part) about a message
// PatchDesk sent.
type DeliveryReport struct {
	// OriginalMessageID is the Message-ID of the message the report is
	// about, read from its returned copy (message/rfc822) or headers
	// (text/rfc822-headers); "" when the report carries neither.
	OriginalMessageID string
	// ReportingMTA is the Reporting-MTA field without its type ("dns;").
	ReportingMTA string
	// Recipients holds one status per recipient the report covers.
	Recipients []RecipientStatus
}

// RecipientStatus is the per-recipient part of a delivery status notification.
type RecipientStatus struct {
	// Recipient is Final-Recipient (or Original-Recipient, or an
	// X-Failed-Recipients address), lowercase, without its type ("rfc822;").
	Recipient string
	// Action is failed, delayed, delivered, relayed or expanded (lowercase).
	Action string
	// Status is the enhanced status code, e.g. "5.1.1".
	Status string
	// Diagnostic is Diagnostic-Code without its type ("smtp;"), the remote
	// server's explanation.
	Diagnostic string
}

// Failed reports whether the recipient will not receive the message.
func (s RecipientStatus) Failed() bool {
	return s.Action == "failed" || (s.Action == "" && strings.HasPrefix(s.Status, "5"))
}

// Failed lists the recipients the message could not be delivered to.
func (r *DeliveryReport) Failed() []RecipientStatus {
	var out []RecipientStatus
	for _, s := range r.Recipients {
		if s.Failed() {
			out = append(out, s)
		}
	}
	return out
}

// maxStatusGroups bounds the field groups read from a delivery-status part.
const maxStatusGroups = 200

// maxFieldBytes bounds what fieldGroups reads: status fields and a header
// are small, a returned message may carry its attachments.
const maxFieldBytes = 256 << 10

var statusCode = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// deliveryReport finds a delivery-status part anywhere in the message and
// reads it; nil when there is none.
func deliveryReport(root *enmime.Part) *DeliveryReport {
	status := root.DepthMatchFirst(func(p *enmime.Part) bool {
		return p.ContentType == "message/delivery-status" || p.ContentType == "message/global-delivery-status"
	})
	if status == nil {
		return nil
	}
	r := &DeliveryReport{}
	for i, group := range fieldGroups(status.Content) {
		if i == 0 && group.Get("Reporting-Mta") != "" {
			r.ReportingMTA = truncate(typedValue(group.Get("Reporting-Mta")), 255)
			continue
		}
		rcpt := typedValue(group.Get("Final-Recipient"))
		if rcpt == "" {
			rcpt = typedValue(group.Get("Original-Recipient"))
		}
		action := strings.ToLower(cleanLine(group.Get("Action")))
		if rcpt == "" && action == "" {
			continue
		}
		s := RecipientStatus{
			Recipient:  normalizeAddress(rcpt),
			Action:     truncate(action, 32),
			Status:     statusCode.FindString(cleanLine(group.Get("Status"))),
			Diagnostic: truncate(typedValue(group.Get("Diagnostic-Code")), 1000),
		}
		r.Recipients = append(r.Recipients, s)
	}
	if len(r.Recipients) == 0 {
		for _, v := range root.Header.Values("X-Failed-Recipients") {
			for _, a := range strings.Split(v, ",") {
				if addr := normalizeAddress(a); addr != "" {
					r.Recipients = append(r.Recipients, RecipientStatus{Recipient: addr, Action: "failed"})
				}
			}
		}
	}
	original := root.DepthMatchFirst(func(p *enmime.Part) bool {
		switch p.ContentType {
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			return true
		}
		return false
	})
	if original != nil {
		if h := fieldGroups(original.Content); len(h) > 0 {
			if ids := messageIDs(h[0].Get("Message-Id")); len(ids) > 0 {
				r.OriginalMessageID = truncate(ids[0], maxIDLen)
			}
		}
	}
	return r
}

// fieldGroups reads header-style field groups separated by blank lines (the
// body of message/delivery-status; a returned message's header is the
// first group). Reading stops at the first malformed line.
func fieldGroups(content []byte) []textproto.MIMEHeader {
	if len(content) > maxFieldBytes {
		content = content[:maxFieldBytes]
	}
	data := make([]byte, 0, len(content)+4)
	data = append(append(data, bytes.TrimLeft(content, "\r\n \t")...), "\r\n\r\n"...)
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	var out []textproto.MIMEHeader
	for len(out) < maxStatusGroups {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 {
			out = append(out, h)
		}
		if err != nil {
			break
		}
		// skip extra blank lines between groups
		for {
			b, err := r.R.Peek(1)
			if err != nil || (b[0] != '\r' && b[0] != '\n') {
				break
			}
			_, _ = r.R.ReadByte()
		}
		if _, err := r.R.Peek(1); err != nil {
			break
		}
	}
	return out
}

// typedValue strips the type of a DSN field ("rfc822; a@b" → "a@b").
func typedValue(v string) string {
	v = cleanLine(v)
	if _, rest, ok := strings.Cut(v, ";"); ok {
		v = strings.TrimSpace(rest)
	}
	return v
}
