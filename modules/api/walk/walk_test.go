// Package walk_test walks every route of docs/openapi.yaml against a real
// server, as every role, with hostile values in each path parameter, query
// parameter and body field (issue 9.5), and holds the document complete.
package walk_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/modules/members"
)

// spec is the part of the OpenAPI document the walk needs.
type spec struct {
	Paths map[string]map[string]struct {
		Parameters []struct {
			Ref  string `yaml:"$ref"`
			Name string `yaml:"name"`
			In   string `yaml:"in"`
		} `yaml:"parameters"`
	} `yaml:"paths"`
	Components struct {
		Parameters map[string]struct {
			Name string `yaml:"name"`
			In   string `yaml:"in"`
		} `yaml:"parameters"`
	} `yaml:"components"`
}

// route is one documented operation.
type route struct {
	method, path string
	query        []string // documented query parameters
}

func loadSpec(t *testing.T) []route {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := yaml.Unmarshal(raw, &s); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	var out []route
	for path, ops := range s.Paths {
		for method, op := range ops {
			r := route{method: strings.ToUpper(method), path: path}
			for _, p := range op.Parameters {
				name, in := p.Name, p.In
				if ref, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
					name, in = s.Components.Parameters[ref].Name, s.Components.Parameters[ref].In
				}
				if in == "query" {
					r.query = append(r.query, name)
				}
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	if len(out) < 30 {
		t.Fatalf("only %d operations in openapi.yaml", len(out))
	}
	return out
}

// TestEveryRouteIsDocumented: every method and path the router serves is in
// docs/openapi.yaml, and everything documented is served.
func TestEveryRouteIsDocumented(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, nil)
	served, err := s.App.Routes()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, r := range loadSpec(t) {
		documented[r.method+" "+r.path] = true
	}
	seen := map[string]bool{}
	for _, r := range served {
		key := r.Method + " " + r.Path
		seen[key] = true
		if !documented[key] {
			t.Errorf("served but not in docs/openapi.yaml: %s", key)
		}
	}
	for key := range documented {
		if !seen[key] {
			t.Errorf("documented but not served: %s", key)
		}
	}
	if len(served) < 30 {
		t.Fatalf("router lists only %d routes", len(served))
	}
}

// Hostile values, already URL-escaped where they go into a URL.
var (
	hostilePath = []string{
		"%FF", "%00", "%C0%AF", "a%00b", "%2e%2e%2f%2e%2e", "-1", "0", "99999999999999999999", "1e3", "1.5", "0x10",
		strings.Repeat("9", 4000), "%27%20OR%201%3D1--", "%E2%80%AE", "%F0%9F%98%80", "00000000-0000-0000-0000-000000000000",
		"7d444840-9dc0-11d1-b245-5ffdce74fad2%00", "%7B%7D", "%5C", "WALK", "con", "%20",
	}
	hostileQuery = []string{
		"%FF", "%00", "%zz", "a%00", "-1", "0", "101", "99999999999999999999", strings.Repeat("a", 3000), "%27%3B--",
		"2026-13-45", "0000-01-01", "9999-12-31", "10000-01-01", "%22", "-", "%5C", "%21%21", "ticket:%FF", "ticket:-1",
		"ticket:99999999999999999999", "true", "%E2%80%AE",
		cursorOf(`{"e":"\u0000","i":"00000000-0000-0000-0000-000000000000"}`),
		cursorOf("{\"e\":\"\xff\"}"),
		cursorOf(`{"u":"9999-12-31T23:59:59Z","i":"00000000-0000-0000-0000-000000000000","c":"0001-01-01T00:00:00Z","a":"0001-01-01T00:00:00Z"}`),
		cursorOf(`[]`), "%3D%3D%3D",
	}
	// hostileJSON are raw JSON values put in one body field at a time.
	hostileJSON = []string{
		`"\u0000"`, `"a\u0000b"`, "\"\xff\xfe\"", `"\ud800"`, `""`, `" "`, `"` + strings.Repeat("x", 255) + `"`,
		`"` + strings.Repeat("x", 2001) + `"`, `"` + strings.Repeat("x", 70_000) + `"`,
		`"` + strings.Repeat("a", 250) + `@walk.test"`, `"http://` + strings.Repeat("a", 2000) + `.test/"`,
		`"ſ@walk.test"`, `"<script>alert(1)</script>"`, `"urgent"`, `"owner"`, `"2026-13-45T00:00:00Z"`, `"0001-01-01T00:00:00Z"`,
		`"9999-12-31T23:59:59Z"`, `"00000000-0000-0000-0000-000000000000"`, `-1`, `0`, `1e308`, `99999999999999999999`,
		`true`, `null`, `[]`, `{}`, `["\u0000"]`, `["` + strings.Repeat("t", 41) + `"]`, `[` + strings.Repeat(`"t",`, 100) + `"t"]`,
		`[null]`, `[1]`, `{"a":"b"}`,
	}
	// hostileBodies replace the whole body.
	hostileBodies = []string{
		``, `{`, `[]`, `null`, `"x"`, `{} {}`, "{\"x\":\"\xff\"}", `{"a":"\u0000"}`,
		strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000), `{"` + strings.Repeat("k", 100_000) + `":1}`,
	}
)

func cursorOf(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }

// queryNames are the query parameters each list handler reads, besides the
// documented ones; every GET route also gets "limit" and an unknown name.
var queryNames = map[string][]string{
	"/tickets":         {"status", "priority", "tag", "assignee_id", "cursor"},
	"/search":          {"q"},
	"/reports/summary": {"from", "to"},
	"/audit":           {"target", "cursor"},
	"/notifications":   {"unread", "cursor"},
	"/deliveries":      {"status", "cursor"},
	"/members":         {"cursor"},
	"/comments":        {"cursor"},
	"/events":          {"cursor"},
}

func queryOf(r route) []string {
	names := slices.Concat(r.query, []string{"limit", "x"})
	for suffix, more := range queryNames {
		if strings.HasSuffix(r.path, suffix) {
			names = append(names, more...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// baseBodies are valid bodies each hostile field value is put into.
func baseBodies(slug string) map[string]map[string]string {
	return map[string]map[string]string{
		"POST /api/v1/signup":                   {"slug": `"walk-new"`, "name": `"W"`, "admin_email": `"a@walk-new.test"`, "admin_name": `"A"`, "password": `"` + apitest.Password + `"`},
		"POST /t/{tenant}/api/v1/sessions":      {"email": `"owner@` + slug + `.test"`, "password": `"` + apitest.Password + `"`},
		"POST /t/{tenant}/api/v1/members":       {"email": `"n@walk.test"`, "name": `"N"`, "role": `"agent"`, "password": `"` + apitest.Password + `"`},
		"PATCH /t/{tenant}/api/v1/members/{id}": {"role": `"agent"`, "active": `true`},
		"POST /t/{tenant}/api/v1/tokens":        {"name": `"t"`, "expires_at": `"2099-01-01T00:00:00Z"`},
		"POST /t/{tenant}/api/v1/tickets": {"title": `"t"`, "body": `"b"`, "priority": `"normal"`, "requester_email": `"r@walk.test"`,
			"tags": `[]`, "assignee_id": `null`},
		"PATCH /t/{tenant}/api/v1/tickets/{number}":         {"title": `"t"`, "status": `"open"`, "priority": `"high"`, "tags": `["x"]`, "assignee_id": `null`},
		"POST /t/{tenant}/api/v1/tickets/{number}/comments": {"body": `"c"`, "internal": `false`},
		"POST /t/{tenant}/api/v1/webhooks":                  {"url": `"http://127.0.0.1:1/hook"`, "events": `["*"]`, "secret": `"0123456789abcdef"`},
	}
}

// body renders fields (raw JSON values) as an object in a stable order.
func body(fields map[string]string) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, fields[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// call is one request of the walk.
type call struct {
	role, method, path string
	body               []byte
	token              string
}

// fixture is the tenant the walk attacks, and a token per role.
type fixture struct {
	slug   string
	tokens map[string]string // role → token ("anonymous" has none)
	ids    map[string]string // path template → a valid value of its {id}
}

func setup(t *testing.T, s *apitest.Server) fixture {
	t.Helper()
	f := fixture{slug: "walk", tokens: map[string]string{"anonymous": "", "forged": "pd_forged_" + strings.Repeat("x", 40)}, ids: map[string]string{}}
	owner := s.Signup(t, f.slug)
	f.tokens["owner"] = owner
	members := map[string]apitest.Member{}
	for _, role := range []string{"admin", "agent", "light_agent", "viewer", "customer"} {
		members[role] = s.AddMember(t, f.slug, owner, role)
		f.tokens[role] = members[role].Token
	}
	base := "/t/" + f.slug + "/api/v1"
	mustID := func(r apitest.Resp, what string) string {
		id, ok := r.JSON["id"].(string)
		if !ok {
			t.Fatalf("%s: %s", what, r)
		}
		return id
	}
	s.Call(t, "POST", base+"/tickets", owner, map[string]any{"title": "staff ticket", "body": "x", "requester_email": members["customer"].Email})
	s.Call(t, "POST", base+"/tickets", members["customer"].Token, map[string]any{"title": "customer ticket", "body": "y"})
	s.Call(t, "POST", base+"/tickets/1/comments", owner, map[string]any{"body": "hello"})
	f.ids[base+"/members/{id}"] = members["agent"].ID
	f.ids[base+"/webhooks/{id}"] = mustID(s.Call(t, "POST", base+"/webhooks", owner, map[string]any{"url": "http://127.0.0.1:1/h", "events": []string{"*"}}), "webhook")
	f.ids[base+"/reports/exports/{id}"] = mustID(s.Call(t, "POST", base+"/reports/exports", owner, nil), "export")
	f.ids[base+"/tokens/{id}"] = mustID(s.Call(t, "POST", base+"/tokens", owner, map[string]any{"name": "walk"}), "token")
	extra := s.Login(t, f.slug, "owner@"+f.slug+".test")
	for _, it := range s.Call(t, "GET", base+"/sessions", extra, nil).Items() {
		if it["current"] == true {
			f.ids[base+"/sessions/{id}"] = it["id"].(string)
		}
	}
	for _, it := range s.Call(t, "GET", base+"/notifications", members["agent"].Token, nil).Items() {
		f.ids[base+"/notifications/{id}/read"] = it["id"].(string)
	}
	for _, it := range s.Call(t, "GET", base+"/deliveries", owner, nil).Items() {
		f.ids[base+"/deliveries/{id}/retry"] = it["id"].(string)
	}
	return f
}

// expand substitutes path parameters: valid values, or one hostile value in
// one parameter at a time.
func (f fixture) expand(tpl string) []string {
	params := []string{}
	for _, part := range strings.Split(tpl, "/") {
		if strings.HasPrefix(part, "{") {
			params = append(params, part)
		}
	}
	valid := func(param string, filled string) string {
		switch param {
		case "{tenant}":
			return f.slug
		case "{number}":
			return "1"
		}
		if id, ok := f.ids[strings.Replace(filled, "{tenant}", f.slug, 1)]; ok {
			return id
		}
		return "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	}
	fill := func(hostileParam, value string) string {
		out := tpl
		for _, p := range params {
			v := value
			if p != hostileParam {
				v = valid(p, tpl)
			}
			out = strings.Replace(out, p, v, 1)
		}
		return out
	}
	paths := []string{fill("", "")}
	for _, p := range params {
		for _, v := range hostilePath {
			paths = append(paths, fill(p, v))
		}
	}
	return paths
}

// calls lists every request of the walk for one route and role.
func (f fixture) calls(r route, role string, bases map[string]map[string]string) []call {
	token := f.tokens[role]
	var out []call
	paths := f.expand(r.path)
	base := bases[r.method+" "+r.path]
	hasBody := r.method == http.MethodPost || r.method == http.MethodPatch || r.method == http.MethodPut
	var validBody []byte
	if hasBody {
		validBody = body(base)
	}
	for _, p := range paths {
		out = append(out, call{role, r.method, p, validBody, token})
	}
	// Without a credential a tenant route stops at authentication: only
	// the public routes (signup, login) read a body as anybody.
	public := strings.HasSuffix(r.path, "/signup") || (strings.HasSuffix(r.path, "/sessions") && r.method == http.MethodPost)
	if (role == "anonymous" || role == "forged") && !public {
		return out
	}
	valid := paths[0]
	if r.method == http.MethodGet {
		for _, n := range queryOf(r) {
			for _, v := range hostileQuery {
				out = append(out, call{role, r.method, valid + "?" + n + "=" + v, validBody, token})
			}
		}
	}
	if !hasBody {
		return out
	}
	for field := range base {
		for _, v := range hostileJSON {
			fields := map[string]string{}
			for k, bv := range base {
				fields[k] = bv
			}
			fields[field] = v
			out = append(out, call{role, r.method, valid, body(fields), token})
		}
		// The same field twice, and spelled in capitals.
		out = append(out, call{role, r.method, valid, []byte(`{"` + field + `":` + base[field] + `,"` + field + `":` + base[field] + `}`), token})
		out = append(out, call{role, r.method, valid, []byte(`{"` + strings.ToUpper(field) + `":` + base[field] + `}`), token})
	}
	for _, b := range hostileBodies {
		out = append(out, call{role, r.method, valid, []byte(b), token})
	}
	return out
}

// destructive requests run after all others: they may revoke the very
// token a role walks with, or delete the fixtures.
func destructive(c call) bool {
	return c.method == http.MethodDelete
}

// TestWalkHostileInputs is issue 9.5: no route, as any role, answers a 5xx
// or logs an ERROR for hostile path parameters, query parameters, or body
// fields (NUL, invalid UTF-8, over-long values, wrong types, duplicate and
// wrongly-cased keys, deep nesting).
func TestWalkHostileInputs(t *testing.T) {
	t.Parallel()
	s := apitest.New(t, func(c *api.Config) {
		c.TokenPerMinute, c.TenantPerMinute = 1e9, 1e9
		c.MembersHTTP = members.HandlerConfig{SignupsPerMinute: 1e9, LoginsPerMinute: 1e9, LoginsPerIPPerMinute: 1e9, AuthFailuresPerMinute: 1e9}
	})
	f := setup(t, s)
	bases := baseBodies(f.slug)
	roles := []string{"anonymous", "forged", "owner", "admin", "agent", "light_agent", "viewer", "customer"}
	var first, last []call
	for _, r := range loadSpec(t) {
		for _, role := range roles {
			for _, c := range f.calls(r, role, bases) {
				switch {
				case strings.HasSuffix(c.path, "/sessions/current") && c.method == http.MethodDelete:
					last = append(last, c) // logs the role out: the very end
				case destructive(c):
					last = slices.Insert(last, 0, c)
				default:
					first = append(first, c)
				}
			}
		}
	}
	client := s.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var (
		mu       sync.Mutex
		failures []string
		statuses = map[int]int{}
	)
	run := func(calls []call) {
		work := make(chan call)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for c := range work {
					status, snippet := send(t, client, s.URL, c)
					mu.Lock()
					statuses[status]++
					if status >= 500 {
						failures = append(failures, fmt.Sprintf("%s %s as %s (body %.80q) → %d %s", c.method, trim(c.path), c.role, c.body, status, snippet))
					}
					mu.Unlock()
				}
			})
		}
		for _, c := range calls {
			work <- c
		}
		close(work)
		wg.Wait()
	}
	run(first)
	run(last)
	t.Logf("%d requests; statuses %v", len(first)+len(last), statuses)
	for i, f := range failures {
		if i == 30 {
			t.Errorf("… and %d more", len(failures)-30)
			break
		}
		t.Error(f)
	}
	var errorLines []string
	for _, line := range strings.Split(s.Logs.String(), "\n") {
		// The database refusing a value means validation missed it: the
		// answer is a 422 all the same, but the walk wants the edge to catch it.
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "validation let through") {
			errorLines = append(errorLines, line)
		}
	}
	if len(errorLines) > 0 {
		t.Errorf("%d ERROR log lines, first: %.600s", len(errorLines), errorLines[0])
	}
	if len(first)+len(last) < 5000 {
		t.Fatalf("only %d requests: is the walk complete?", len(first)+len(last))
	}
}

func send(t *testing.T, client *http.Client, base string, c call) (int, string) {
	var rd io.Reader
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base+c.path, rd)
	if err != nil {
		t.Errorf("build %s %s: %v", c.method, trim(c.path), err)
		return 0, ""
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", c.method, trim(c.path), err)
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 300))
	return res.StatusCode, string(b)
}

func trim(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
