package members_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/members"
)

func TestSignupValidation(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	good := func(slug string) map[string]string {
		return map[string]string{"slug": slug, "name": "Acme", "admin_email": "a@acme.test", "admin_name": "A", "password": apitest.Password}
	}
	s.Signup(t, "acme")
	cases := []struct {
		name   string
		body   any
		status int
	}{
		{"duplicate slug", good("acme"), http.StatusConflict},
		{"too short", good("ab"), http.StatusUnprocessableEntity},
		{"too long", good(strings.Repeat("a", 41)), http.StatusUnprocessableEntity},
		{"uppercase", good("Acme2"), http.StatusUnprocessableEntity},
		{"underscore", good("acme_2"), http.StatusUnprocessableEntity},
		{"leading hyphen", good("-acme"), http.StatusUnprocessableEntity},
		{"reserved www", good("www"), http.StatusUnprocessableEntity},
		{"reserved admin", good("admin"), http.StatusUnprocessableEntity},
		{"punycode", good("xn--bcher-kva"), http.StatusUnprocessableEntity},
		{"encoded-label form", good("ab--cd"), http.StatusUnprocessableEntity},
		{"admin_email too long", map[string]string{"slug": "okslug", "name": "A", "admin_email": strings.Repeat("a", 250) + "@b.test", "admin_name": "A", "password": apitest.Password}, http.StatusUnprocessableEntity},
		{"admin_email not ASCII", map[string]string{"slug": "okslug", "name": "A", "admin_email": "\u0455am@b.test", "admin_name": "A", "password": apitest.Password}, http.StatusUnprocessableEntity},
		{"name too long", map[string]string{"slug": "okslug", "name": strings.Repeat("n", 201), "admin_email": "a@b.test", "admin_name": "A", "password": apitest.Password}, http.StatusUnprocessableEntity},
		{"admin_name too long", map[string]string{"slug": "okslug", "name": "A", "admin_email": "a@b.test", "admin_name": strings.Repeat("é", 201), "password": apitest.Password}, http.StatusUnprocessableEntity},
		{"bad email", map[string]string{"slug": "okslug", "name": "A", "admin_email": "nope", "admin_name": "A", "password": apitest.Password}, http.StatusUnprocessableEntity},
		{"short password", map[string]string{"slug": "okslug", "name": "A", "admin_email": "a@b.test", "admin_name": "A", "password": "short"}, http.StatusUnprocessableEntity},
		{"unknown field", map[string]any{"slug": "okslug", "name": "A", "admin_email": "a@b.test", "admin_name": "A", "password": apitest.Password, "plan": "gold"}, http.StatusBadRequest},
		{"malformed json", `{"slug":`, http.StatusBadRequest},
		{"wrong type", map[string]any{"slug": 42}, http.StatusBadRequest},
	}
	// Names a mail or web service expects under the base domain, PatchDesk's
	// own paths, and the operator's demo tenant are reserved (issue 9.10).
	for _, slug := range []string{"demo", "localhost", "postmaster", "webmail", "mta-sts", "autodiscover", "healthz", "readyz",
		"www", "mail", "smtp", "imap", "pop", "ftp", "api", "app", "static", "assets", "help", "support", "status", "docs", "root",
		"abuse", "security", "hostmaster", "webmaster", "noreply", "no-reply", "inbound", "metrics"} {
		cases = append(cases, struct {
			name   string
			body   any
			status int
		}{"reserved " + slug, good(slug), http.StatusUnprocessableEntity})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Call(t, "POST", "/api/v1/signup", "", tc.body)
			if !r.IsProblem(tc.status) {
				t.Fatalf("want %d problem+json, got %s", tc.status, r)
			}
		})
	}
	// 40 characters is the longest valid slug.
	s.Signup(t, strings.Repeat("b", 40))
	if r := s.Call(t, "GET", "/t/okslug/api/v1/me", "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("a refused signup left a tenant behind: %s", r)
	}
}

func TestSignupRateLimitedPerIP(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) { c.MembersHTTP.SignupsPerMinute = 2 })
	limited := 0
	for i := range 4 {
		r := s.Call(t, "POST", "/api/v1/signup", "", map[string]string{"slug": "x"}) // invalid on purpose: the limit comes first
		if r.Status == http.StatusTooManyRequests {
			limited++
			if !r.IsProblem(429) || r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without problem+json or Retry-After: %s", r)
			}
		}
		_ = i
	}
	if limited == 0 {
		t.Fatal("4 signups in a burst from one IP with a limit of 2/min were never limited")
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	s.Signup(t, "signin")
	agent := s.AddMember(t, "signin", s.Login(t, "signin", "owner@signin.test"), "agent")

	r := s.Call(t, "POST", "/t/signin/api/v1/sessions", "", map[string]string{"email": agent.Email, "password": "wrong password!"})
	if !r.IsProblem(401) {
		t.Fatalf("wrong password: %s", r)
	}
	r = s.Call(t, "POST", "/t/signin/api/v1/sessions", "", map[string]string{"email": "ghost@signin.test", "password": apitest.Password})
	if !r.IsProblem(401) {
		t.Fatalf("unknown email: %s", r)
	}
	r = s.Call(t, "GET", "/t/signin/api/v1/me", agent.Token, nil)
	if r.Status != 200 || r.JSON["role"] != "agent" || r.JSON["email"] != agent.Email {
		t.Fatalf("me: %s", r)
	}
	for _, bad := range []string{"", "garbage", agent.Token + "x", "pd_00000000000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if r := s.Call(t, "GET", "/t/signin/api/v1/me", bad, nil); !r.IsProblem(401) {
			t.Errorf("token %q: %s", bad, r)
		}
	}
}

func TestMemberManagementRoles(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "roles")
	admin := s.AddMember(t, "roles", owner, "admin")
	add := func(token, role string) apitest.Resp {
		return s.Call(t, "POST", "/t/roles/api/v1/members", token, map[string]any{
			"email": role + "-new@roles.test", "name": "New", "role": role,
		})
	}
	for _, role := range []string{"agent", "light_agent", "viewer", "customer"} {
		m := s.AddMember(t, "roles", owner, role)
		if r := add(m.Token, "viewer"); !r.IsProblem(403) {
			t.Errorf("%s adding a member: %s", role, r)
		}
		if r := s.Call(t, "PATCH", "/t/roles/api/v1/members/"+m.ID, m.Token, map[string]any{"role": "admin"}); !r.IsProblem(403) {
			t.Errorf("%s promoting themselves: %s", role, r)
		}
		list := s.Call(t, "GET", "/t/roles/api/v1/members", m.Token, nil)
		if role == "customer" && !list.IsProblem(403) {
			t.Errorf("customer listed members: %s", list)
		}
		if role != "customer" && list.Status != 200 {
			t.Errorf("%s listing members: %s", role, list)
		}
	}
	if r := add(admin.Token, "agent"); r.Status != 201 || r.JSON["version"] != float64(1) {
		t.Errorf("admin adding an agent: %s", r)
	}
	if r := add(admin.Token, "owner"); !r.IsProblem(403) {
		t.Errorf("admin creating an owner: %s", r)
	}
	if r := add(owner, "agent"); !r.IsProblem(409) {
		t.Errorf("duplicate email: %s", r)
	}
	if r := add(owner, "superuser"); !r.IsProblem(422) {
		t.Errorf("unknown role: %s", r)
	}
	// Values longer than the schema allows are 422 naming the field, never 500.
	for _, tc := range []struct {
		field string
		body  map[string]any
	}{
		{"email", map[string]any{"email": strings.Repeat("e", 64) + "@" + strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("d", 63) + ".test", "name": "N", "role": "agent"}},
		{"email", map[string]any{"email": strings.Repeat("e", 65) + "@roles.test", "name": "N", "role": "agent"}},
		{"name", map[string]any{"email": "long-name@roles.test", "name": strings.Repeat("n", 201), "role": "agent"}},
	} {
		r := s.Call(t, "POST", "/t/roles/api/v1/members", owner, tc.body)
		if !r.IsProblem(422) || !strings.HasPrefix(r.JSON["detail"].(string), tc.field+" ") {
			t.Errorf("too long %s: %s", tc.field, r)
		}
	}
	if r := s.Call(t, "POST", "/t/roles/api/v1/members", owner, map[string]any{"email": "AGENT-NEW@Roles.TEST", "name": "N", "role": "agent"}); !r.IsProblem(409) {
		t.Errorf("duplicate email in another case: %s", r)
	}
	// Addresses are stored and shown in canonical form.
	if r := s.Call(t, "POST", "/t/roles/api/v1/members", owner, map[string]any{"email": " Mixed.Case@ROLES.test ", "name": "M", "role": "viewer"}); r.Status != 201 || r.JSON["email"] != "mixed.case@roles.test" {
		t.Errorf("mixed-case address: %s", r)
	}
	// Paging walks the whole directory once.
	seen := map[string]bool{}
	cursor := ""
	for range 10 {
		r := s.Call(t, "GET", "/t/roles/api/v1/members?limit=2&cursor="+cursor, owner, nil)
		for _, m := range r.Items() {
			if seen[m["id"].(string)] {
				t.Fatalf("member %v listed twice", m["email"])
			}
			seen[m["id"].(string)] = true
		}
		c, _ := r.JSON["next_cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	if len(seen) != 8 { // owner, admin, four role members, the agent the admin added, the mixed-case viewer
		t.Errorf("paged %d members, want 7", len(seen))
	}
}

func TestLastOwnerProtected(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "owners")
	me := s.Call(t, "GET", "/t/owners/api/v1/me", owner, nil)
	ownerID := me.JSON["id"].(string)
	path := "/t/owners/api/v1/members/" + ownerID

	if r := s.Call(t, "PATCH", path, owner, map[string]any{"role": "admin"}); !r.IsProblem(422) {
		t.Fatalf("demoting the last owner: %s", r)
	}
	if r := s.Call(t, "PATCH", path, owner, map[string]any{"active": false}); !r.IsProblem(422) {
		t.Fatalf("deactivating the last owner: %s", r)
	}
	admin := s.AddMember(t, "owners", owner, "admin")
	if r := s.Call(t, "PATCH", path, admin.Token, map[string]any{"role": "agent"}); !r.IsProblem(403) {
		t.Fatalf("admin demoting an owner: %s", r)
	}
	second := s.AddMember(t, "owners", owner, "owner")
	if r := s.Call(t, "PATCH", path, owner, map[string]any{"role": "admin"}, "If-Match", "7"); !r.IsProblem(409) {
		t.Fatalf("stale If-Match: %s", r)
	}
	r := s.Call(t, "PATCH", path, owner, map[string]any{"role": "admin"}, "If-Match", "1")
	if r.Status != 200 || r.JSON["role"] != "admin" || r.JSON["version"] != float64(2) {
		t.Fatalf("demoting one of two owners: %s", r)
	}
	if r := s.Call(t, "PATCH", "/t/owners/api/v1/members/"+second.ID, second.Token, map[string]any{"active": false}); !r.IsProblem(422) {
		t.Fatalf("deactivating the new last owner: %s", r)
	}
	// Deactivated members lose access at once.
	if r := s.Call(t, "PATCH", "/t/owners/api/v1/members/"+admin.ID, second.Token, map[string]any{"active": false}); r.Status != 200 {
		t.Fatalf("deactivate admin: %s", r)
	}
	if r := s.Call(t, "GET", "/t/owners/api/v1/me", admin.Token, nil); !r.IsProblem(401) {
		t.Fatalf("deactivated member's token still works: %s", r)
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	owner := s.Signup(t, "tokens")
	r := s.Call(t, "POST", "/t/tokens/api/v1/tokens", owner, map[string]string{"name": "ci"})
	if r.Status != 201 || r.JSON["id"] == nil {
		t.Fatalf("create token: %s", r)
	}
	tok := r.JSON["token"].(string)
	if me := s.Call(t, "GET", "/t/tokens/api/v1/me", tok, nil); me.Status != 200 || me.JSON["role"] != "owner" {
		t.Fatalf("API token: %s", me)
	}
	if r := s.Call(t, "POST", "/t/tokens/api/v1/tokens", owner, map[string]string{"name": ""}); !r.IsProblem(422) {
		t.Fatalf("empty token name: %s", r)
	}
	if r := s.Call(t, "POST", "/t/tokens/api/v1/tokens", owner, map[string]string{"name": strings.Repeat("é", 101)}); !r.IsProblem(422) {
		t.Fatalf("token name over 100 characters: %s", r)
	}
	cust := s.AddMember(t, "tokens", owner, "customer")
	if r := s.Call(t, "POST", "/t/tokens/api/v1/tokens", cust.Token, map[string]string{"name": "x"}); !r.IsProblem(403) {
		t.Fatalf("customer token: %s", r)
	}
}

// TestCrossTenantInvisibility uses tenant A's credentials on every tenant
// route of tenant B (same data shape): nothing answers but 401/404.
func TestCrossTenantInvisibility(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	ownerA, ownerB := s.Signup(t, "tenant-a"), s.Signup(t, "tenant-b")
	agentB := s.AddMember(t, "tenant-b", ownerB, "agent")
	apiA := s.Call(t, "POST", "/t/tenant-a/api/v1/tokens", ownerA, map[string]string{"name": "a"}).JSON["token"].(string)
	sessionB := current(t, s, "tenant-b", agentB.Token, "sessions")
	routes := []struct{ method, path string }{
		{"GET", "/me"}, {"GET", "/members"}, {"POST", "/members"}, {"PATCH", "/members/" + agentB.ID}, {"POST", "/tokens"},
		{"GET", "/tokens"}, {"GET", "/sessions"}, {"GET", "/sessions?member_id=" + agentB.ID}, {"DELETE", "/sessions/current"},
		{"DELETE", "/sessions/" + sessionB}, {"DELETE", "/tokens/" + sessionB},
	}
	for _, tok := range []string{ownerA, apiA} {
		for _, rt := range routes {
			r := s.Call(t, rt.method, "/t/tenant-b/api/v1"+rt.path, tok, map[string]any{"name": "x"})
			if r.Status != 401 && r.Status != 404 {
				t.Errorf("A's token on B %s %s: %s", rt.method, rt.path, r)
			}
			if strings.Contains(string(r.Body), "tenant-b") || strings.Contains(string(r.Body), agentB.Email) {
				t.Errorf("response reveals B's data: %s", r)
			}
		}
	}
	if r := s.Call(t, "GET", "/t/tenant-b/api/v1/me", agentB.Token, nil); r.Status != 200 {
		t.Errorf("B's session after A's attempts: %s", r)
	}
	if _, err := members.NewService(members.Config{}, nil, nil, nil); err == nil {
		t.Error("NewService accepted missing dependencies")
	}
}
