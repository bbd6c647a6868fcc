package notify

import "net/netip"

// Webhook targets must be ordinary public unicast addresses. The lists
// follow the IANA IPv4 and IPv6 Special-Purpose Address Registries; an
// address that embeds an IPv4 address (IPv4-mapped, NAT64 well-known prefix,
// 6to4) is judged by the IPv4 address it leads to.
var (
	// blockedV4 is every IPv4 special-purpose block a webhook must not reach.
	blockedV4 = prefixes(
		"0.0.0.0/8",          // "this network"
		"10.0.0.0/8",         // private
		"100.64.0.0/10",      // carrier-grade NAT
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link-local (cloud metadata)
		"172.16.0.0/12",      // private
		"192.0.0.0/24",       // IETF protocol assignments
		"192.0.2.0/24",       // TEST-NET-1
		"192.88.99.0/24",     // 6to4 relay anycast (deprecated)
		"192.168.0.0/16",     // private
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // TEST-NET-2
		"203.0.113.0/24",     // TEST-NET-3
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved
		"255.255.255.255/32", // limited broadcast (inside 240/4; listed for the reader)
	)
	// globalV6 is where public IPv6 unicast lives; everything outside it
	// (::/8 with loopback, unspecified and IPv4-compatible forms, 100::/64,
	// 5f00::/16, fc00::/7, fe80::/10, fec0::/10, ff00::/8, …) is refused.
	globalV6 = netip.MustParsePrefix("2000::/3")
	// blockedV6 are the special-purpose blocks inside 2000::/3.
	blockedV6 = prefixes(
		"2001::/23",     // IETF protocol assignments (Teredo, ORCHID, AMT, …)
		"2001:db8::/32", // documentation
		"3fff::/20",     // documentation (RFC 9637)
	)
	mappedV4  = netip.MustParsePrefix("::ffff:0:0/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func prefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// blockedTarget reports whether a webhook must not connect to a: any
// special-purpose address (private, loopback, link-local, shared, reserved,
// documentation, benchmarking, multicast, broadcast, unspecified, ULA,
// IPv4-compatible, discard-only, protocol assignments), directly or
// through an embedded IPv4 address. 64:ff9b:1::/48 (local-use NAT64) is
// refused as a whole: its embedding depends on a prefix length only the
// local network knows, and it is never globally reachable.
func blockedTarget(a netip.Addr) bool {
	a = a.WithZone("")
	switch {
	case !a.IsValid():
		return true
	case a.Is4():
		return inAny(blockedV4, a)
	case mappedV4.Contains(a):
		return blockedTarget(a.Unmap())
	case nat64.Contains(a):
		b := a.As16()
		return blockedTarget(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		b := a.As16()
		return blockedTarget(netip.AddrFrom4([4]byte(b[2:6])))
	default:
		return !globalV6.Contains(a) || inAny(blockedV6, a)
	}
}

func inAny(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
