package api

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/respond"
)

// contentSecurityPolicy fits the server-rendered web UI: scripts (htmx),
// styles, images and fetches from our own origin only, no plugins, no
// framing by anyone, no <base> rewriting, forms posting only to us.
const contentSecurityPolicy = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// securityHeaders sets the headers a browser needs on every response (API
// answers, errors, operational endpoints). HSTS is sent only to a request
// that came over TLS: directly (r.TLS), or through a proxy that says so in
// X-Forwarded-Proto when trustForwardedProto is set.
func securityHeaders(trustForwardedProto bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "same-origin")
			if r.TLS != nil || (trustForwardedProto && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// validateEdge refuses, before any routing or database work, a request
// whose path or query PostgreSQL could not store or compare: bytes that are
// not UTF-8 (%FF) and NUL (%00) anywhere, other control characters in the
// path, and malformed query escapes. They are the client's mistake (400), never a 500 or an
// ERROR line.
func validateEdge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanText(r.URL.Path) {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "the path must be UTF-8 without control characters"))
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "the query string is malformed"))
			return
		}
		for k, vs := range q {
			for _, v := range append(vs, k) {
				if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
					respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "query parameters must be UTF-8 without NUL characters"))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cleanText reports whether s is valid UTF-8 without C0 control characters
// or DEL.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// metricsGate guards /metrics on the public listener: it answers only a
// loopback peer that came through no proxy (no Forwarded or
// X-Forwarded-For header: a local Prometheus or the operator's curl), or a
// request bearing the metrics token when one is configured. Everyone else
// gets 404, as if there were no such route. The dedicated metrics listener
// (--metrics-addr) is not gated: it is meant to be bound to loopback or a
// private network.
func metricsGate(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !mayScrape(r, token) {
			respond.Error(w, r, errs.Errorf(errs.ErrNotFound, "no such route"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mayScrape decides who reads /metrics on the public listener. With a
// metrics token, only its bearer: a reverse proxy on the same host that adds
// no forwarding header would otherwise make every client look like
// loopback. Without one (the one-command run), a loopback peer that came
// through no proxy it can tell of.
func mayScrape(r *http.Request, token string) bool {
	if token != "" {
		got, ok := respond.Bearer(r)
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Host", "Via"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
