package search_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestMigrationTrimsDocumentsIndexedBefore builds a tenant before migration
// 00007 holding a document indexed without bounds and checks that migrating
// trims it exactly as the consumer now would: the description's beginning
// and the comments' newest text stay.
func TestMigrationTrimsDocumentsIndexedBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, tn, admin := tenancytest.LegacyTenant(t, "00007")
	table := pgx.Identifier{tn.Schema, "search_docs"}.Sanitize()
	big := "first " + strings.Repeat("é", 40000) + " last"
	if _, err := admin.Exec(ctx, `INSERT INTO `+table+` (ticket_id, number, title, status, body, public_text, internal_text, ticket_version)
		VALUES (gen_random_uuid(), 1, 'big', 'open', $1, $1, $1, 1), (gen_random_uuid(), 2, 'small', 'open', 'b', 'p', 'i', 1)`, big); err != nil {
		t.Fatal(err)
	}
	current, err := tenancy.Open(ctx, tenancy.Config{DatabaseURL: dsn, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer current.Close()
	if err := current.MigrateTenants(ctx, tenancy.MigrateOptions{}, func(r tenancy.MigrateResult) {
		if r.Err != nil {
			t.Errorf("migrate %s: %v", r.Slug, r.Err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := admin.Query(ctx, `SELECT body, public_text, internal_text FROM `+table+` ORDER BY number`)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Body, Public, Internal string }])
	if err != nil {
		t.Fatal(err)
	}
	runes := []rune(big)
	if d := docs[0]; d.Body != string(runes[:8192]) || d.Public != string(runes[len(runes)-16384:]) || d.Internal != d.Public {
		t.Errorf("big document: body %d, public %d, internal %d characters", len([]rune(d.Body)), len([]rune(d.Public)), len([]rune(d.Internal)))
	}
	if d := docs[1]; d.Body != "b" || d.Public != "p" || d.Internal != "i" {
		t.Errorf("small document changed: %+v", d)
	}
}
