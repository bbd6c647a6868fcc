package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestSSRFSpecialPurposeRanges checks the first and last address of every
// IANA special-purpose block, embedded IPv4 forms, and public neighbours.
func TestSSRFSpecialPurposeRanges(t *testing.T) {
	t.Parallel()
	ranges := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
		"192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001::/32", "2001:10::/28",
		"2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	}
	for _, r := range ranges {
		p := netip.MustParsePrefix(r)
		for _, a := range []netip.Addr{p.Masked().Addr(), lastAddr(p)} {
			if !blockedTarget(a) {
				t.Errorf("%s (in %s) is allowed", a, r)
			}
		}
	}
	blocked := []string{
		// The bypass forms of the issue and their relatives.
		"::127.0.0.1", "::7f00:1", "::10.0.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::ffff:255.255.255.255", "::ffff:0:127.0.0.1", "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
		"64:ff9b::10.1.2.3", "64:ff9b::c000:0201", "64:ff9b:1::808:808", "64:ff9b:1:ffff::1",
		"2002:7f00:1::", "2002:7f00:0001:ffff:ffff:ffff:ffff:ffff", "2002:a9fe:a9fe::1", "2002:c0a8:0101::1", "2002:0a00:0001::1",
		"2002:0000:0000::1", "2002:f000::1", "2002:c612::1", "192.0.0.8", "192.0.0.170", "198.19.255.255", "240.0.0.1",
		"255.255.255.255", "0.0.0.0", "0.1.2.3", "fe80::1%eth0", "ff02::1", "ff05::2", "fd00:ec2::254", "100::1",
		"2001::1", "2001:1ff:ffff:ffff::1", "2001:db8::1",
	}
	for _, s := range blocked {
		if a := netip.MustParseAddr(s); !blockedTarget(a) {
			t.Errorf("%s is allowed", s)
		}
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
		"169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0", "192.0.3.0", "192.88.98.255",
		"192.88.100.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "198.51.99.255", "203.0.112.255",
		"223.255.255.255", "::ffff:8.8.8.8", "64:ff9b::808:808", "64:ff9b::1.1.1.1", "2002:0808:0808::1", "2001:200::1",
		"2001:db7:ffff::1", "2001:db9::1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "3ffe:ffff::1",
	}
	for _, s := range allowed {
		if a := netip.MustParseAddr(s); blockedTarget(a) {
			t.Errorf("%s is refused", s)
		}
	}
	if !blockedTarget(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}

// TestSSRFDialRefusesBypassForms sends webhooks to a real listener on
// loopback through every spelling that leads to this host: the refusal must
// come from the check on the dialled address. Forms that would route
// elsewhere (IPv4-compatible, NAT64, 6to4) are only checked at registration,
// which resolves literals without any network, so that a regression never
// sends a packet off loopback.
func TestSSRFDialRefusesBypassForms(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	strict := newWebhookClient(5*time.Second, false)
	for _, host := range []string{"127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "[::]", "[::1]", "127.0.0.2"} {
		target := "http://" + host + ":" + port + "/hook"
		err := postWebhook(ctx, strict, target, "s", "d", "e", "ticket.created", []byte(`{}`))
		if !errors.Is(err, errPrivateTarget) {
			t.Errorf("%s: %v, want the private-target refusal", target, err)
		}
	}
	for _, host := range []string{"127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "[::1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]",
		"[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]", "[2002:a9fe:a9fe::]", "192.0.0.1", "198.18.0.1", "240.0.0.1", "255.255.255.255"} {
		if err := validateWebhookURL(ctx, "http://"+host+":"+port+"/hook", false); err == nil {
			t.Errorf("%s accepted at registration", host)
		}
	}
	// PATCHDESK_WEBHOOK_ALLOW_PRIVATE keeps loopback usable for tests and development.
	if err := postWebhook(ctx, newWebhookClient(5*time.Second, true), srv.URL+"/hook", "s", "d", "e", "ticket.created", []byte(`{}`)); err != nil {
		t.Errorf("allow-private client: %v", err)
	}
	if err := validateWebhookURL(ctx, srv.URL+"/hook", true); err != nil {
		t.Errorf("allow-private registration: %v", err)
	}
}
