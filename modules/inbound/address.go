package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"regexp"
	"strconv"
	"strings"
)

// Reply addresses are reply+{slug}.{number}.{token}@{domain}: token is the
// first 80 bits of HMAC-SHA256(secret, slug, number) in lowercase base32
// (16 characters), so a stranger cannot make a valid address for a ticket
// from its number, and mail systems that lowercase addresses do not break it.
const (
	replyPrefix = "reply+"
	tokenBytes  = 10
	tokenLen    = 16 // base32 characters of tokenBytes
)

// tokenEncoding is lowercase base32 without padding: the alphabet a
// lowercased address keeps intact.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// slugShape is the shape of a tenant slug as an address local part (the
// members module validates slugs when tenants are created).
var slugShape = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`)

// replyToken computes the token for a ticket. The input is framed so that
// no two (slug, number) pairs share it.
func replyToken(secret []byte, slug string, number int64) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("patchdesk reply address\x00" + slug + "\x00" + strconv.FormatInt(number, 10)))
	return tokenEncoding.EncodeToString(mac.Sum(nil)[:tokenBytes])
}

// ReplyAddress returns the address PatchDesk puts in Reply-To of mail
// about ticket number of tenant slug. secret must be non-empty, secret
// and long-lived: rotating it invalidates every reply address already
// sent (keep the old one for ParseReplyAddress during a changeover).
func ReplyAddress(secret []byte, slug string, number int64, domain string) string {
	slug = strings.ToLower(slug)
	return replyPrefix + slug + "." + strconv.FormatInt(number, 10) + "." + replyToken(secret, slug, number) + "@" + strings.ToLower(domain)
}

// ParseReplyAddress verifies a reply address (bare, or "Name <addr>") and
// returns its tenant slug and ticket number. ok is false for anything but
// the exact form with a token that verifies under secret (compared in
// constant time), and always for an empty secret. The domain is not
// checked: RecipientRoute does that. Case is ignored.
func ParseReplyAddress(secret []byte, addr string) (slug string, number int64, ok bool) {
	if len(secret) == 0 {
		return "", 0, false
	}
	local, _ := splitAddress(addr)
	slug, number, token, ok := replyParts(local)
	if !ok {
		return "", 0, false
	}
	want := replyToken(secret, slug, number)
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return "", 0, false
	}
	return slug, number, true
}

// replyParts splits a lowercase local part reply+{slug}.{number}.{token}.
func replyParts(local string) (slug string, number int64, token string, ok bool) {
	rest, found := strings.CutPrefix(local, replyPrefix)
	if !found {
		return "", 0, "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || !slugShape.MatchString(parts[0]) || len(parts[2]) != tokenLen {
		return "", 0, "", false
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != parts[1] {
		return "", 0, "", false
	}
	return parts[0], n, parts[2], true
}

// RouteKind is what a recipient address on the inbound domain means.
type RouteKind string

// Route kinds.
const (
	// RouteUnknown: not on the inbound domain, or no tenant shape. The
	// pipeline may still match a tenant's configured support address;
	// otherwise SMTP answers 550.
	RouteUnknown RouteKind = "unknown"
	// RouteTenant: {slug}@{inbound domain}, a new message for a tenant.
	RouteTenant RouteKind = "tenant"
	// RouteReply: a reply address of tenant slug. Its token is NOT verified
	// here: call ParseReplyAddress with the secret; a token that does not
	// verify makes the message a new one, never a comment.
	RouteReply RouteKind = "reply"
)

// RecipientRoute tells which tenant a recipient address is for:
// {slug}@{inboundDomain} (RouteTenant) or reply+{slug}.…@{inboundDomain}
// (RouteReply). Case is ignored; slug is returned lowercase.
func RecipientRoute(addr, inboundDomain string) (slug string, kind RouteKind) {
	local, domain := splitAddress(addr)
	want := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(inboundDomain)), ".")
	if local == "" || want == "" || domain != want {
		return "", RouteUnknown
	}
	if strings.HasPrefix(local, replyPrefix) {
		if s, _, _, ok := replyParts(local); ok {
			return s, RouteReply
		}
		return "", RouteUnknown
	}
	if slugShape.MatchString(local) {
		return local, RouteTenant
	}
	return "", RouteUnknown
}

// splitAddress returns the lowercase local part and domain of an address
// given bare, in angle brackets or as "Name <addr>".
func splitAddress(addr string) (local, domain string) {
	addr = strings.TrimSpace(addr)
	if i := strings.LastIndexByte(addr, '<'); i >= 0 {
		addr = addr[i+1:]
		if j := strings.IndexByte(addr, '>'); j >= 0 {
			addr = addr[:j]
		}
	}
	addr = strings.ToLower(strings.TrimSpace(addr))
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 {
		return "", ""
	}
	return addr[:i], strings.TrimSuffix(addr[i+1:], ".")
}
