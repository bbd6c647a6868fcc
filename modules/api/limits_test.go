package api_test

import (
	"net/http"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
)

// TestRateLimitKeysOnTheMember is issue 9.6: the per-token limit used to
// key on the raw Authorization header while authentication trimmed it, so
// "Bearer␠␠<token>" escaped the limit. Limits now key on the authenticated
// member: every spelling of the header, and every session or API token of
// the member, draws from one budget; other members keep theirs.
func TestRateLimitKeysOnTheMember(t *testing.T) {
	t.Parallel()
	// 12 per minute with a burst of 2: a third request within seconds is refused.
	s := apitest.New(t, func(c *api.Config) { c.TokenPerMinute = 12 })
	owner := s.Signup(t, "limited")
	other := s.Login(t, "limited", "owner@limited.test") // a second session of the same member
	path := "/t/limited/api/v1/me"
	if r := s.Call(t, "GET", path, "", nil, "Authorization", "Bearer  "+owner); r.Status != 200 {
		t.Fatalf("first request: %s", r)
	}
	if r := s.Call(t, "GET", path, "", nil, "Authorization", "bearer "+other+"  "); r.Status != 200 {
		t.Fatalf("second request: %s", r)
	}
	for _, header := range []string{"Bearer " + owner, "Bearer  " + owner, "Bearer\t" + owner, "BEARER " + other, "Bearer " + owner + " ",
		" Bearer " + owner, "Bearer \t " + owner, "Bearer\u00a0" + owner, "bEaReR   " + other + "\t"} {
		r := s.Call(t, "GET", path, "", nil, "Authorization", header)
		if !r.IsProblem(http.StatusTooManyRequests) || r.Header.Get("Retry-After") == "" {
			t.Errorf("%q after the member's budget was spent: %s", header, r)
		}
	}
	// Another member of the same tenant is not limited by the first.
	s2 := apitest.New(t, func(c *api.Config) { c.TokenPerMinute = 12 })
	owner2 := s2.Signup(t, "shared")
	agent := s2.AddMember(t, "shared", owner2, "agent")
	for range 3 {
		s2.Call(t, "GET", "/t/shared/api/v1/me", owner2, nil)
	}
	if r := s2.Call(t, "GET", "/t/shared/api/v1/me", agent.Token, nil); r.Status != 200 {
		t.Errorf("another member limited by the owner's requests: %s", r)
	}
}
