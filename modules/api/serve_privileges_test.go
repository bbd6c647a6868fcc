package api_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/api/apitest"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/move"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestServeAsNonSuperuser runs the API as a login without superuser rights
// (LOGIN CREATEROLE, owner of its database: what serve needs to provision
// tenants, ADR 0005 "Privileges"): signup, tickets and listing work, and a
// tenant transaction runs as the tenant's role with no superuser right to
// fall back on, so none of them can rely on one. Then, given REPLICATION,
// the same login is enough on the source side of a move (publication by
// table list, slot, change-log triggers, seal); the target side, PostgreSQL
// 15's CREATE SUBSCRIPTION, is reached as a superuser.
func TestServeAsNonSuperuser(t *testing.T) {
	ctx := context.Background()
	admin := tenancytest.Connect(t, tenancytest.AdminURL())
	login := "pdapp_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec(ctx, `CREATE ROLE `+login+` LOGIN NOSUPERUSER CREATEROLE NOREPLICATION`); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the database (and its tenant roles) is dropped.
	t.Cleanup(func() {
		conn := tenancytest.Connect(t, tenancytest.AdminURL())
		if _, err := conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+login); err != nil {
			t.Errorf("drop login: %v", err)
		}
	})
	dsn := tenancytest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+` OWNER TO `+login); err != nil {
		t.Fatal(err)
	}
	u.User = url.User(login)

	s := apitest.NewOn(t, u.String(), func(c *api.Config) { c.TokenPerMinute, c.TenantPerMinute = 1e6, 1e6 })
	owner := s.Signup(t, "unprivileged")
	for i := range 3 {
		if r := s.Call(t, "POST", "/t/unprivileged/api/v1/tickets", owner, map[string]any{"title": "t", "body": "b"}); r.Status != 201 {
			t.Fatalf("create ticket %d: %s", i, r)
		}
	}
	if r := s.Call(t, "GET", "/t/unprivileged/api/v1/tickets?limit=10", owner, nil); r.Status != 200 || len(r.Items()) != 3 {
		t.Fatalf("list tickets: %s", r)
	}
	tn, err := s.Reg.Lookup(ctx, "unprivileged")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Reg.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		var sessionUser, currentUser, super string
		var sessionSuper bool
		if err := tx.QueryRow(ctx, `SELECT session_user::text, current_user::text, current_setting('is_superuser'),
			(SELECT rolsuper FROM pg_roles WHERE rolname = session_user)`).Scan(&sessionUser, &currentUser, &super, &sessionSuper); err != nil {
			return err
		}
		if sessionUser != login || currentUser != tn.Role || super != "off" || sessionSuper {
			t.Errorf("tenant transaction as session %s (superuser %t), role %s, is_superuser %s; want session %s, role %s, no superuser",
				sessionUser, sessionSuper, currentUser, super, login, tn.Role)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := admin.Exec(ctx, `ALTER ROLE `+login+` REPLICATION`); err != nil {
		t.Fatal(err)
	}
	dedicatedDatabase(t, s, "dedicated-unprivileged") // a superuser URL
	m, err := move.New(s.Reg).Start(ctx, "unprivileged", "dedicated-unprivileged", move.Options{})
	if err != nil {
		t.Fatalf("move with a non-superuser source login: %v", err)
	}
	if r := s.Call(t, "GET", "/t/unprivileged/api/v1/tickets?limit=10", owner, nil); r.Status != 200 || len(r.Items()) != 3 || m.State != move.Done {
		t.Fatalf("after the move (%s): %s", m.State, r)
	}
}
