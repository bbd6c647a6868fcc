package members_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

// exec runs sql in the tenant's scoped transaction (as the tenant itself
// would), standing in for the passage of time.
func exec(t *testing.T, s *apitest.Server, slug, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// current returns the id of the credential a token authenticates with.
func current(t *testing.T, s *apitest.Server, slug, token, kind string) string {
	t.Helper()
	for _, it := range s.Call(t, "GET", "/t/"+slug+"/api/v1/"+kind, token, nil).Items() {
		if it["current"] == true {
			return it["id"].(string)
		}
	}
	t.Fatalf("no current %s for the token", kind)
	return ""
}

func TestCredentialsListedAndRevoked(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	const slug = "creds"
	owner := s.Signup(t, slug)
	admin := s.AddMember(t, slug, owner, "admin")
	agent := s.AddMember(t, slug, owner, "agent")
	customer := s.AddMember(t, slug, owner, "customer")
	call := func(token, method, path string, body any) apitest.Resp {
		return s.Call(t, method, "/t/"+slug+"/api/v1"+path, token, body)
	}
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ci := call(agent.Token, "POST", "/tokens", map[string]any{"name": "ci", "expires_at": expiry})
	forever := call(agent.Token, "POST", "/tokens", map[string]any{"name": "forever"})
	if ci.Status != 201 || forever.Status != 201 || ci.JSON["expires_at"] == nil || forever.JSON["expires_at"] != nil {
		t.Fatalf("create tokens: %s / %s", ci, forever)
	}
	ciToken, ciID := ci.JSON["token"].(string), ci.JSON["id"].(string)

	// A member sees their own credentials, never a secret.
	mine := call(agent.Token, "GET", "/sessions", nil)
	if len(mine.Items()) != 1 || mine.Items()[0]["member_id"] != agent.ID || mine.Items()[0]["current"] != true ||
		mine.Items()[0]["kind"] != "session" || mine.Items()[0]["member_email"] != agent.Email {
		t.Fatalf("agent's sessions: %s", mine)
	}
	tokens := call(agent.Token, "GET", "/tokens", nil)
	if names := names(tokens); !slices.Equal(names, []string{"forever", "ci"}) {
		t.Fatalf("agent's tokens %v: %s", names, tokens)
	}
	for _, r := range []apitest.Resp{mine, tokens} {
		for _, secret := range []string{agent.Token, ciToken, forever.JSON["token"].(string), "hash"} {
			if strings.Contains(string(r.Body), secret) {
				t.Fatalf("a listing reveals a secret (%q): %s", secret, r)
			}
		}
	}
	if r := call(agent.Token, "GET", "/sessions?member_id="+admin.ID, nil); !r.IsProblem(403) {
		t.Errorf("agent listing the admin's sessions: %s", r)
	}
	if r := call(customer.Token, "GET", "/sessions", nil); len(r.Items()) != 1 || r.Items()[0]["member_id"] != customer.ID {
		t.Errorf("customer's sessions: %s", r)
	}
	// Owners and admins see everyone's.
	if all := call(admin.Token, "GET", "/sessions", nil); len(all.Items()) != 4 {
		t.Errorf("admin sees %d sessions, want 4 (one per member): %s", len(all.Items()), all)
	}
	if r := call(owner, "GET", "/tokens?member_id="+agent.ID, nil); !slices.Equal(names(r), []string{"forever", "ci"}) {
		t.Errorf("owner listing the agent's tokens: %s", r)
	}
	if r := call(owner, "GET", "/sessions?member_id=nope", nil); !r.IsProblem(400) {
		t.Errorf("bad member_id: %s", r)
	}

	ownerSession := current(t, s, slug, owner, "sessions")
	agentSession := current(t, s, slug, agent.Token, "sessions")
	// Another member's credential is invisible to a member (404), an owner's
	// is beyond an admin (403), and kinds do not mix.
	if r := call(agent.Token, "DELETE", "/sessions/"+ownerSession, nil); !r.IsProblem(404) {
		t.Errorf("agent revoking the owner's session: %s", r)
	}
	if r := call(admin.Token, "DELETE", "/sessions/"+ownerSession, nil); !r.IsProblem(403) {
		t.Errorf("admin revoking the owner's session: %s", r)
	}
	if r := call(agent.Token, "DELETE", "/tokens/"+agentSession, nil); !r.IsProblem(404) {
		t.Errorf("revoking a session as a token: %s", r)
	}
	if r := call(agent.Token, "DELETE", "/tokens/not-a-uuid", nil); !r.IsProblem(404) {
		t.Errorf("revoking a malformed id: %s", r)
	}
	if r := call(ciToken, "GET", "/me", nil); r.Status != 200 {
		t.Fatalf("token before revocation: %s", r)
	}
	if r := call(agent.Token, "DELETE", "/tokens/"+ciID, nil); r.Status != http.StatusNoContent {
		t.Fatalf("agent revoking their token: %s", r)
	}
	if r := call(ciToken, "GET", "/me", nil); !r.IsProblem(401) {
		t.Errorf("revoked token still works: %s", r)
	}
	if r := call(admin.Token, "DELETE", "/sessions/"+agentSession, nil); r.Status != http.StatusNoContent {
		t.Fatalf("admin revoking the agent's session: %s", r)
	}
	if r := call(agent.Token, "GET", "/me", nil); !r.IsProblem(401) {
		t.Errorf("session revoked by an admin still works: %s", r)
	}
	// Logout revokes exactly the session used.
	other := s.Login(t, slug, customer.Email)
	if r := call(customer.Token, "DELETE", "/sessions/current", nil); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %s", r)
	}
	if r := call(customer.Token, "GET", "/me", nil); !r.IsProblem(401) {
		t.Errorf("session works after logout: %s", r)
	}
	if r := call(other, "GET", "/me", nil); r.Status != 200 {
		t.Errorf("logout revoked the customer's other session: %s", r)
	}
	// Every revocation is audited: who, whose, which.
	audit := call(owner, "GET", "/audit?target=member:"+agent.ID, nil).Items()
	var actions []string
	for _, a := range audit {
		if !strings.HasSuffix(a["action"].(string), ".revoked") {
			continue // member.created
		}
		d := a["data"].(map[string]any)
		actions = append(actions, a["action"].(string)+" "+d["kind"].(string)+" by "+a["actor_id"].(string))
	}
	want := []string{"session.revoked session by " + admin.ID, "token.revoked api by " + agent.ID} // newest first
	if !slices.Equal(actions, want) {
		t.Errorf("audit of the agent's credentials: %v, want %v", actions, want)
	}
	a := call(owner, "GET", "/audit?target=member:"+customer.ID, nil).Items()
	if len(a) != 2 || a[0]["action"] != "session.revoked" || a[0]["data"].(map[string]any)["current"] != true {
		t.Errorf("audit of the logout: %v", a)
	}
}

func names(r apitest.Resp) []string {
	var out []string
	for _, it := range r.Items() {
		out = append(out, it["name"].(string))
	}
	return out
}

func TestCredentialsExpire(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	const slug = "expiry"
	owner := s.Signup(t, slug)
	call := func(token, method, path string, body any) apitest.Resp {
		return s.Call(t, method, "/t/"+slug+"/api/v1"+path, token, body)
	}
	for _, at := range []time.Time{time.Now().Add(-time.Minute), {}} {
		if r := call(owner, "POST", "/tokens", map[string]any{"name": "past", "expires_at": at}); !r.IsProblem(422) {
			t.Errorf("token expiring at %v: %s", at, r)
		}
	}
	tok := call(owner, "POST", "/tokens", map[string]any{"name": "short", "expires_at": time.Now().Add(time.Hour)})
	if tok.Status != 201 {
		t.Fatal(tok)
	}
	exec(t, s, slug, `UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, tok.JSON["id"])
	if r := call(tok.JSON["token"].(string), "GET", "/me", nil); !r.IsProblem(401) {
		t.Errorf("expired API token: %s", r)
	}
	if r := call(owner, "GET", "/tokens", nil); len(r.Items()) != 0 {
		t.Errorf("expired token still listed: %s", r)
	}
	session := s.Login(t, slug, "owner@"+slug+".test")
	exec(t, s, slug, `UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, current(t, s, slug, session, "sessions"))
	if r := call(session, "GET", "/me", nil); !r.IsProblem(401) {
		t.Errorf("expired session: %s", r)
	}
	if r := call(owner, "GET", "/me", nil); r.Status != 200 {
		t.Errorf("another session expired with it: %s", r)
	}
}

// TestSessionUseIsWrittenAtMostOncePerInterval checks the idle expiry: a use
// slides a session's expiry to 14 days later (capped by its maximum age),
// and is written back at most once a minute — repeated requests leave the
// row untouched (same xmin), so authentication does not write per request.
func TestSessionUseIsWrittenAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	const slug = "touchy"
	owner := s.Signup(t, slug)
	id := current(t, s, slug, owner, "sessions") // the first use is written
	ctx := context.Background()
	tn, err := s.Reg.Lookup(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		XMin       string
		LastUsed   time.Time
		ExpiresIn  time.Duration
		UntilUsed  time.Duration
		CreatedAgo time.Duration
	}
	read := func() row {
		t.Helper()
		var r row
		err := s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
			return tx.QueryRow(ctx, `SELECT xmin::text, last_used_at, expires_at - now(), expires_at - last_used_at, now() - created_at
				FROM tokens WHERE id = $1`, id).Scan(&r.XMin, &r.LastUsed, &r.ExpiresIn, &r.UntilUsed, &r.CreatedAgo)
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := read()
	if first.UntilUsed != 14*24*time.Hour {
		t.Fatalf("after a use the session expires %s after it, want 14 days", first.UntilUsed)
	}
	for range 5 {
		if r := s.Call(t, "GET", "/t/"+slug+"/api/v1/me", owner, nil); r.Status != 200 {
			t.Fatal(r)
		}
	}
	if again := read(); again.XMin != first.XMin || !again.LastUsed.Equal(first.LastUsed) || again.UntilUsed != first.UntilUsed {
		t.Fatalf("requests within a minute rewrote the session: %+v then %+v", first, again)
	}
	// A minute later (the last use moved back), a use slides the expiry.
	exec(t, s, slug, `UPDATE tokens SET last_used_at = now() - interval '2 minutes', expires_at = now() + interval '1 hour' WHERE id = $1`, id)
	s.Call(t, "GET", "/t/"+slug+"/api/v1/me", owner, nil)
	if r := read(); r.ExpiresIn < 13*24*time.Hour || r.UntilUsed != 14*24*time.Hour {
		t.Fatalf("a use after the interval did not slide the expiry: %+v", r)
	}
	// Sliding stops at the maximum age of 90 days.
	exec(t, s, slug, `UPDATE tokens SET created_at = now() - interval '89 days', last_used_at = now() - interval '2 minutes' WHERE id = $1`, id)
	s.Call(t, "GET", "/t/"+slug+"/api/v1/me", owner, nil)
	if r := read(); r.CreatedAgo+r.ExpiresIn > 90*24*time.Hour+time.Second || r.ExpiresIn > 25*time.Hour {
		t.Fatalf("expiry beyond the maximum age: %+v", r)
	}
	// API tokens record their use and keep their expiry.
	api := s.Call(t, "POST", "/t/"+slug+"/api/v1/tokens", owner, map[string]any{"name": "bot"})
	s.Call(t, "GET", "/t/"+slug+"/api/v1/me", api.JSON["token"].(string), nil)
	for _, it := range s.Call(t, "GET", "/t/"+slug+"/api/v1/tokens", owner, nil).Items() {
		if it["last_used_at"] == nil || it["expires_at"] != nil {
			t.Errorf("API token after a use: %v", it)
		}
	}
}
