package members_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestLoginsLimitedPerIPAcrossTenants: besides the per tenant and IP limit,
// one client IP gets a bounded number of logins over all tenants, so it
// cannot spread password guessing (and hashing work) over many tenants.
func TestLoginsLimitedPerIPAcrossTenants(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.MembersHTTP.LoginsPerIPPerMinute = 3 }) // burst 1
	slugs := []string{"ip-one", "ip-two", "ip-three"}
	for _, slug := range slugs {
		s.Signup(t, slug)
	}
	statuses := []int{}
	for _, slug := range slugs {
		r := s.Call(t, "POST", "/t/"+slug+"/api/v1/sessions", "", map[string]string{"email": "owner@" + slug + ".test", "password": apitest.Password})
		statuses = append(statuses, r.Status)
		if r.Status == 429 && r.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %s", r)
		}
	}
	if statuses[0] != 201 || statuses[1] != 429 || statuses[2] != 429 {
		t.Fatalf("logins to three tenants from one IP: %v, want 201 429 429", statuses)
	}
}

// TestBadTokensThrottledPerIP: well-formed tokens of the tenant whose secret
// matches nothing each cost a database transaction; once a client IP spent
// its failure budget, its tokens are refused with 429 before any lookup —
// even a valid one, which proves no lookup happened — while tokens that are
// not this tenant's are refused without counting, and other IPs are served.
func TestBadTokensThrottledPerIP(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.MembersHTTP.AuthFailuresPerMinute = 6 }) // burst 2
	owner := s.Signup(t, "guessed")
	other := s.Signup(t, "elsewhere")
	guess := owner[:len(owner)-4] + "AAAA" // this tenant's prefix, a wrong secret
	path := "/t/guessed/api/v1/me"
	for range 5 {
		// Another tenant's token and garbage never reach the database.
		if r := s.Call(t, "GET", path, other, nil); !r.IsProblem(401) {
			t.Fatalf("another tenant's token: %s", r)
		}
		if r := s.Call(t, "GET", path, "garbage", nil); !r.IsProblem(401) {
			t.Fatalf("garbage token: %s", r)
		}
	}
	for i := range 2 {
		if r := s.Call(t, "GET", path, guess, nil); !r.IsProblem(401) {
			t.Fatalf("wrong secret %d within the budget: %s", i, r)
		}
	}
	for _, tok := range []string{guess, owner} {
		if r := s.Call(t, "GET", path, tok, nil); !r.IsProblem(429) || r.Header.Get("Retry-After") == "" {
			t.Errorf("token from an IP over its failure budget: %s", r)
		}
	}
	// The same valid token from another loopback address is served.
	if st := callFrom(t, "127.0.0.2", s.URL+path, owner); st != 200 {
		t.Errorf("valid token from another IP: %d", st)
	}
}

// callFrom sends GET url with a bearer token from local address ip.
func callFrom(t *testing.T, ip, url, token string) int {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "assign requested address") {
			t.Skipf("cannot bind %s: %v", ip, err)
		}
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}
