package members_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestMigrationCanonicalisesExistingAddresses builds a tenant at schema
// version 4 holding the rows the old rules allowed — addresses in mixed
// case, Unicode fold twins that lower() kept apart, addresses with no ASCII
// form — and checks what migration 00005 makes of them: canonical
// addresses, one member per address (the ASCII spelling wins), the others
// quarantined with their sessions revoked and an audit entry, requester
// addresses rewritten or cleared (audited), read models in line, and the
// CHECK constraints refusing any non-canonical write afterwards.
func TestMigrationCanonicalisesExistingAddresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, tn, admin := tenancytest.LegacyTenant(t, "00005")
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, strings.ReplaceAll(sql, "S.", pgx.Identifier{tn.Schema}.Sanitize()+"."), args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Members, oldest first: the look-alikes are older than the ASCII
	// spellings, so "oldest wins" alone would pick them. (lower() kept ſ/s
	// and ﬀ/ff apart, so the old unique index let both in; it folded the
	// Kelvin sign, so that one appears as a ticket requester only.)
	m := map[string]uuid.UUID{}
	for i, row := range []struct{ key, email, role string }{
		{"longs", "ſam@fold.test", "customer"},
		{"sam", "Sam@Fold.test", "customer"},
		{"ligature", "ﬀion@fold.test", "customer"},
		{"ffion", "ffion@fold.test", "agent"},
		{"jose", "josé@fold.test", "customer"},
		{"owner", "Owner@Fold.TEST", "owner"},
	} {
		m[row.key] = uuid.New()
		exec(`INSERT INTO S.members (id, email, name, role, created_at) VALUES ($1, $2, $3, $4, now() - make_interval(days => 10 - $5))`,
			m[row.key], row.email, row.key, row.role, i)
		exec(`INSERT INTO S.tokens (member_id, kind, hash) VALUES ($1, 'session', $2)`, m[row.key], []byte("hash-"+row.key))
	}
	tk := map[string]uuid.UUID{}
	for i, row := range []struct {
		key       string
		requester *string
	}{{"longs", ptr("ſam@fold.test")}, {"jose", ptr("JOSÉ@fold.test")}, {"kate", ptr("Kate@Fold.test")}, {"kelvin", ptr("\u212Aate@fold.test")}, {"none", nil}} {
		tk[row.key] = uuid.New()
		exec(`INSERT INTO S.tickets (id, number, title, requester_email) VALUES ($1, $2, $3, $4)`, tk[row.key], i+1, row.key, row.requester)
		exec(`INSERT INTO S.search_docs (ticket_id, number, title, status, requester_email, ticket_version) VALUES ($1, $2, $3, 'open', $4, 1)`,
			tk[row.key], i+1, row.key, row.requester)
		exec(`INSERT INTO S.report_tickets (ticket_id, number, title, requester_email, priority, status, created_at) VALUES ($1, $2, $3, $4, 'normal', 'open', now())`,
			tk[row.key], i+1, row.key, row.requester)
	}

	current, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(current.Close)
	var results []tenancy.MigrateResult
	if err := current.MigrateTenants(ctx, tenancy.MigrateOptions{}, func(r tenancy.MigrateResult) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].OK() || results[0].From != 4 || results[0].To < 5 {
		t.Fatalf("migrate: %+v", results)
	}

	type member struct {
		Email  string
		Active bool
		Tokens int
	}
	got := map[string]member{}
	for key, id := range m {
		var mb member
		err := admin.QueryRow(ctx, `SELECT email, active, (SELECT count(*) FROM `+pgx.Identifier{tn.Schema}.Sanitize()+`.tokens WHERE member_id = $1)
			FROM `+pgx.Identifier{tn.Schema}.Sanitize()+`.members WHERE id = $1`, id).Scan(&mb.Email, &mb.Active, &mb.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		got[key] = mb
	}
	quarantined := func(key string) member {
		return member{Email: strings.ReplaceAll(m[key].String(), "-", "") + "@quarantined.invalid", Active: false, Tokens: 0}
	}
	want := map[string]member{
		"sam":      {"sam@fold.test", true, 1},
		"longs":    quarantined("longs"),
		"ffion":    {"ffion@fold.test", true, 1},
		"ligature": quarantined("ligature"),
		"jose":     quarantined("jose"),
		"owner":    {"owner@fold.test", true, 1},
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("member %s: got %+v, want %+v", key, got[key], w)
		}
	}
	requesters := func(table, idColumn string) map[string]string {
		out := map[string]string{}
		for key, id := range tk {
			var r *string
			if err := admin.QueryRow(ctx, `SELECT requester_email FROM `+pgx.Identifier{tn.Schema, table}.Sanitize()+` WHERE `+idColumn+` = $1`, id).Scan(&r); err != nil {
				t.Fatal(err)
			}
			out[key] = deref(r)
		}
		return out
	}
	wantRequesters := map[string]string{"longs": `"sam@fold.test"`, "jose": "<NULL>", "kate": `"kate@fold.test"`, "kelvin": `"kate@fold.test"`, "none": "<NULL>"}
	for _, table := range []struct{ name, id string }{{"tickets", "id"}, {"search_docs", "ticket_id"}, {"report_tickets", "ticket_id"}} {
		if got := requesters(table.name, table.id); !maps.Equal(got, wantRequesters) {
			t.Errorf("%s requesters: %v, want %v", table.name, got, wantRequesters)
		}
	}
	var audits []string
	rows, err := admin.Query(ctx, `SELECT action || ' ' || target || ' ' || (data->>'before') FROM `+pgx.Identifier{tn.Schema}.Sanitize()+`.audit_log ORDER BY action, target`)
	if err != nil {
		t.Fatal(err)
	}
	if audits, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	wantAudits := []string{
		"member.email_quarantined member:" + m["jose"].String() + " josé@fold.test",
		"member.email_quarantined member:" + m["ligature"].String() + " ﬀion@fold.test",
		"member.email_quarantined member:" + m["longs"].String() + " ſam@fold.test",
		"ticket.requester_cleared ticket:2 JOSÉ@fold.test",
	}
	slices.Sort(wantAudits)
	if strings.Join(audits, "\n") != strings.Join(wantAudits, "\n") {
		t.Errorf("audit entries:\n%s\nwant:\n%s", strings.Join(audits, "\n"), strings.Join(wantAudits, "\n"))
	}
	// From now on the schema refuses what is not canonical, whoever writes.
	for _, q := range []string{
		`INSERT INTO S.members (email, name, role) VALUES ('Bob@fold.test', 'b', 'agent')`,
		`INSERT INTO S.members (email, name, role) VALUES ('ſue@fold.test', 'b', 'agent')`,
		`UPDATE S.tickets SET requester_email = 'KATE@fold.test' WHERE number = 1`,
		`UPDATE S.tickets SET requester_email = ' kate@fold.test' WHERE number = 1`,
	} {
		_, err := admin.Exec(ctx, strings.ReplaceAll(q, "S.", pgx.Identifier{tn.Schema}.Sanitize()+"."))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: %v, want a check violation", q, err)
		}
	}
	exec(`INSERT INTO S.members (email, name, role) VALUES ('bob@fold.test', 'b', 'agent')`)
}

func ptr[T any](v T) *T { return &v }
