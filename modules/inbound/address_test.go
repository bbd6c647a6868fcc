package inbound

import (
	"strings"
	"testing"
)

func TestReplyAddress(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	addr := ReplyAddress(secret, "acme", 42, "Inbound.PatchDesk.local")
	local, domain, _ := strings.Cut(addr, "@")
	if domain != "inbound.patchdesk.local" || !strings.HasPrefix(local, "reply+acme.42.") || len(local) != len("reply+acme.42.")+tokenLen {
		t.Fatalf("ReplyAddress = %q", addr)
	}
	if local != strings.ToLower(local) {
		t.Errorf("token is not lowercase: %q", addr)
	}
	if again := ReplyAddress(secret, "acme", 42, "inbound.patchdesk.local"); again != addr {
		t.Errorf("not deterministic: %q vs %q", again, addr)
	}

	for _, form := range []string{addr, strings.ToUpper(addr), "Acme Support <" + addr + ">", "<" + addr + ">", " " + addr + " "} {
		slug, n, ok := ParseReplyAddress(secret, form)
		if !ok || slug != "acme" || n != 42 {
			t.Errorf("ParseReplyAddress(%q) = %q, %d, %v", form, slug, n, ok)
		}
	}

	token := local[len("reply+acme.42."):]
	forged := []string{
		"reply+acme.43." + token + "@inbound.patchdesk.local",                   // another ticket, same token
		"reply+other.42." + token + "@inbound.patchdesk.local",                  // another tenant
		"reply+acme.42." + flip(token) + "@inbound.patchdesk.local",             // one character off
		"reply+acme.42." + token[:tokenLen-1] + "@inbound.patchdesk.local",      // truncated
		"reply+acme.42." + token + "a@inbound.patchdesk.local",                  // extended
		"reply+acme.042." + token + "@inbound.patchdesk.local",                  // non-canonical number
		"reply+acme.42@inbound.patchdesk.local",                                 // the old, unsigned form
		"reply+acme.42." + token + ".x@inbound.patchdesk.local",                 // extra part
		"replyacme.42." + token + "@inbound.patchdesk.local",                    // no plus
		"reply-acme.42." + token + "@inbound.patchdesk.local",                   // another separator
		"reply+acme.-42." + token + "@inbound.patchdesk.local",                  // negative
		"reply+acme.0." + token + "@inbound.patchdesk.local",                    // zero
		"reply+acme.99999999999999999999." + token + "@inbound.patchdesk.local", // overflow
		"reply+acme.42." + token,                                                // no domain
		"",
	}
	for _, f := range forged {
		if slug, n, ok := ParseReplyAddress(secret, f); ok {
			t.Errorf("ParseReplyAddress(%q) accepted a forged address: %q %d", f, slug, n)
		}
	}
	if _, _, ok := ParseReplyAddress([]byte("another secret of the same size!"), addr); ok {
		t.Error("accepted under another secret")
	}
	if _, _, ok := ParseReplyAddress(nil, ReplyAddress(nil, "acme", 42, "x")); ok {
		t.Error("accepted with an empty secret")
	}

	// Every valid slug round-trips.
	for _, slug := range []string{"a1", "acme-corp", "x" + strings.Repeat("y", 60) + "z", "0day"} {
		s, n, ok := ParseReplyAddress(secret, ReplyAddress(secret, slug, 9007199254740993, "d.example"))
		if !ok || s != slug || n != 9007199254740993 {
			t.Errorf("round trip of %q: %q %d %v", slug, s, n, ok)
		}
	}
}

// flip changes the first character of a token to another base32 character.
func flip(token string) string {
	c := byte('a')
	if token[0] == 'a' {
		c = 'b'
	}
	return string(c) + token[1:]
}

func TestRecipientRoute(t *testing.T) {
	t.Parallel()
	const domain = "inbound.patchdesk.local"
	tests := []struct {
		addr, slug string
		kind       RouteKind
	}{
		{"acme@inbound.patchdesk.local", "acme", RouteTenant},
		{"ACME@Inbound.PatchDesk.Local", "acme", RouteTenant},
		{"Support <acme-corp@inbound.patchdesk.local>", "acme-corp", RouteTenant},
		{"acme@inbound.patchdesk.local.", "acme", RouteTenant},
		{"reply+acme.42.abcdefghijklmnop@inbound.patchdesk.local", "acme", RouteReply},
		{"REPLY+ACME.42.ABCDEFGHIJKLMNOP@INBOUND.PATCHDESK.LOCAL", "acme", RouteReply},
		{"reply+acme.42@inbound.patchdesk.local", "", RouteUnknown},
		{"reply+acme@inbound.patchdesk.local", "", RouteUnknown},
		{"acme@other.example", "", RouteUnknown},
		{"acme@sub.inbound.patchdesk.local", "", RouteUnknown},
		{"-acme@inbound.patchdesk.local", "", RouteUnknown},
		{"a.b@inbound.patchdesk.local", "", RouteUnknown},
		{"acme+tag@inbound.patchdesk.local", "", RouteUnknown},
		{"@inbound.patchdesk.local", "", RouteUnknown},
		{"inbound.patchdesk.local", "", RouteUnknown},
		{"", "", RouteUnknown},
	}
	for _, tt := range tests {
		slug, kind := RecipientRoute(tt.addr, domain)
		if slug != tt.slug || kind != tt.kind {
			t.Errorf("RecipientRoute(%q) = %q, %s; want %q, %s", tt.addr, slug, kind, tt.slug, tt.kind)
		}
	}
	if _, kind := RecipientRoute("acme@inbound.patchdesk.local", ""); kind != RouteUnknown {
		t.Error("an empty inbound domain routes mail")
	}
}

func TestTicketRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		n       int64
		ok      bool
	}{
		{"Re: [#42] Export fails", 42, true},
		{"AW: AW: [#7] Drucker", 7, true},
		{"[#3] a [#4] b", 3, true},
		{"Ticket #42", 0, false},
		{"[# 42]", 0, false},
		{"[#0]", 0, false},
		{"[#-1]", 0, false},
		{"[#99999999999999999999]", 0, false},
		{"[#123456789012345678]", 123456789012345678, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		n, ok := TicketRef(tt.subject)
		if n != tt.n || ok != tt.ok {
			t.Errorf("TicketRef(%q) = %d, %v; want %d, %v", tt.subject, n, ok, tt.n, tt.ok)
		}
	}
}
