package search_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
)

type world struct {
	s                                        *apitest.Server
	owner, agent, light, viewer              string
	customer                                 apitest.Member
	fire, coffee, network, keyboard, payroll string
}

func (w *world) do(t *testing.T, token, method, path string, body any) apitest.Resp {
	t.Helper()
	return w.s.Call(t, method, "/t/searchy/api/v1"+path, token, body)
}

func (w *world) ticket(t *testing.T, body map[string]any) string {
	t.Helper()
	r := w.do(t, w.owner, "POST", "/tickets", body)
	if r.Status != 201 {
		t.Fatal(r)
	}
	return fmt.Sprint(r.JSON["number"])
}

// find returns the ticket numbers a search answers, in order.
func (w *world) find(t *testing.T, token, q string) []string {
	t.Helper()
	r := w.s.Call(t, "GET", "/t/searchy/api/v1/search?q="+url.QueryEscape(q), token, nil)
	if r.Status != 200 {
		t.Fatalf("search %q: %s", q, r)
	}
	var out []string
	for _, it := range r.Items() {
		out = append(out, fmt.Sprint(it["number"]))
	}
	return out
}

func setup(t *testing.T) *world {
	t.Helper()
	s := apitest.New(t, nil)
	ev := s.StartEvents(t)
	_ = ev
	w := &world{s: s, owner: s.Signup(t, "searchy")}
	w.agent = s.AddMember(t, "searchy", w.owner, "agent").Token
	w.light = s.AddMember(t, "searchy", w.owner, "light_agent").Token
	w.viewer = s.AddMember(t, "searchy", w.owner, "viewer").Token
	w.customer = s.AddMember(t, "searchy", w.owner, "customer")
	w.fire = w.ticket(t, map[string]any{"title": "Printer on fire", "body": "Smoke in room three", "tags": []string{"hardware"}, "requester_email": w.customer.Email})
	w.coffee = w.ticket(t, map[string]any{"title": "Coffee machine broken", "body": "The printer next to it works fine", "requester_email": w.customer.Email})
	w.network = w.ticket(t, map[string]any{"title": "Network down", "body": "No wifi", "requester_email": w.customer.Email})
	w.keyboard = w.ticket(t, map[string]any{"title": "Keyboard sticky", "body": "keys", "tags": []string{"peripheral-zebra"}})
	w.payroll = w.ticket(t, map[string]any{"title": "Payroll printer jammed", "body": "confidential", "requester_email": "boss@searchy.test"})
	w.do(t, w.owner, "POST", "/tickets/"+w.network+"/comments", map[string]any{"body": "Router reboot needed"})
	w.do(t, w.owner, "POST", "/tickets/"+w.network+"/comments", map[string]any{"body": "Vendor contract expired", "internal": true})
	// Tenant B has the same words.
	ob := s.Signup(t, "other-tenant")
	s.Call(t, "POST", "/t/other-tenant/api/v1/tickets", ob, map[string]any{"title": "Printer on fire bravoonly", "body": "Router vendor"})
	apitest.Eventually(t, 30*time.Second, "the index to catch up", func() bool {
		return len(w.find(t, w.owner, "vendor")) == 1 && len(w.find(t, w.owner, "printer")) == 3
	})
	return w
}

func TestSearch(t *testing.T) {
	t.Parallel()
	w := setup(t)
	cases := []struct {
		name, token, q string
		want           []string
		ordered        bool
	}{
		{"title hits rank first", w.owner, "printer", []string{w.payroll, w.fire, w.coffee}, false},
		{"body", w.owner, "smoke", []string{w.fire}, false},
		{"public comment", w.owner, "router", []string{w.network}, false},
		{"internal note for staff", w.owner, "vendor", []string{w.network}, false},
		{"internal note for light agents", w.light, "vendor", []string{w.network}, false},
		{"internal note for viewers", w.viewer, "vendor", []string{w.network}, false},
		{"internal note hidden from customers", w.customer.Token, "vendor", nil, false},
		{"tag", w.agent, "zebra", []string{w.keyboard}, false},
		{"exclusion", w.owner, "printer -fire", []string{w.payroll, w.coffee}, false},
		{"phrase", w.owner, `"on fire"`, []string{w.fire}, false},
		{"or", w.owner, "coffee or keyboard", []string{w.coffee, w.keyboard}, false},
		{"prefix of the last word", w.owner, "netw", []string{w.network}, false},
		{"customer sees only their own", w.customer.Token, "printer", []string{w.fire, w.coffee}, false},
		{"other tenant's words never appear", w.owner, "bravoonly", nil, false},
		{"stop words only", w.owner, "the and of", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := w.find(t, tc.token, tc.q)
			a, b := slices.Clone(got), slices.Clone(tc.want)
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Fatalf("search %q: got %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	// Title matches come before body matches.
	got := w.find(t, w.owner, "printer")
	if got[len(got)-1] != w.coffee {
		t.Errorf("body-only match ranked above title matches: %v", got)
	}
	r := w.s.Call(t, "GET", "/t/searchy/api/v1/search?q=smoke", w.owner, nil)
	if snip := fmt.Sprint(r.Items()[0]["snippet"]); !strings.Contains(snip, "<mark>Smoke</mark>") {
		t.Errorf("snippet does not highlight: %q", snip)
	}
	// Deleted tickets disappear.
	w.do(t, w.owner, "DELETE", "/tickets/"+w.coffee, nil)
	apitest.Eventually(t, 20*time.Second, "deleted ticket gone", func() bool { return len(w.find(t, w.owner, "coffee")) == 0 })
}

func TestHostileQueriesNeverFail(t *testing.T) {
	t.Parallel()
	w := setup(t)
	queries := []string{
		`"`, `""`, `"unterminated`, `\`, `\\\`, `:*`, `printer:*`, `a:*:*`, `&`, `|`, `!`, `!!!`, `()`, `(printer`, `printer)`,
		`& | ! ( ) : *`, `'; DROP TABLE tickets; --`, `<script>alert(1)</script>`, `-`, `--`, `-printer`, `or`, `or or or`,
		`printer <-> fire`, `printer & !`, `ünïcödé 文字 🙂`, `Ḁ̴̧̛̗̘̙̜̝̞̟̠̤̥̦̩̪̫̬̭̮̯̰̱̲̳̹̺̻̼ͅ`, strings.Repeat("x", 1000), strings.Repeat("printer ", 125),
		strings.Repeat("a", 10*1024), strings.Repeat(`"\:*&|!`, 1500), "\x00", "printer\x00fire", "\xff\xfe",
	}
	for _, q := range queries {
		r := w.s.Call(t, "GET", "/t/searchy/api/v1/search?q="+url.QueryEscape(q), w.owner, nil)
		if r.Status != 200 && !r.IsProblem(400) {
			t.Errorf("query %.40q: %s", q, r)
		}
	}
	if r := w.s.Call(t, "GET", "/t/searchy/api/v1/search", w.owner, nil); !r.IsProblem(400) {
		t.Errorf("missing q: %s", r)
	}
}

func TestReindexRebuildsFromSource(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	tn, err := w.s.Reg.Resolve(ctx, "searchy")
	if err != nil {
		t.Fatal(err)
	}
	err = w.s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM search_docs`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.find(t, w.owner, "printer"); len(got) != 0 {
		t.Fatalf("index not emptied: %v", got)
	}
	n, err := w.s.App.Search.Reindex(ctx, tn)
	if err != nil || n != 5 {
		t.Fatalf("reindex: %d %v", n, err)
	}
	if got := w.find(t, w.owner, "vendor"); !slices.Equal(got, []string{w.network}) {
		t.Fatalf("after reindex, internal note: %v", got)
	}
	if got := w.find(t, w.customer.Token, "router"); !slices.Equal(got, []string{w.network}) {
		t.Fatalf("after reindex, public comment for the customer: %v", got)
	}
	if got := w.find(t, w.customer.Token, "vendor"); len(got) != 0 {
		t.Fatalf("after reindex the customer finds an internal note: %v", got)
	}
}
