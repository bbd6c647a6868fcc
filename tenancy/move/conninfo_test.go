package move

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// TestSubscriptionConninfoQuoting: a source password with every character
// that breaks naive quoting reaches the subscription intact, as PostgreSQL
// stores it and libpq (here pgconn, which follows its rules) reads it.
func TestSubscriptionConninfoQuoting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := tenancytest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const password = `it's a \ pass=word@host' '' \'`
	cases := []struct {
		name, dsn string
	}{
		{"url", "postgres://mover:" + urlEscape(password) + "@127.0.0.1:5432/source?sslmode=disable"},
		{"url-raw-quotes", "postgres://mover:" + strings.ReplaceAll(urlEscape(password), "%27", "'") + "@127.0.0.1:5432/source?sslmode=disable"},
		{"keyword-value", `host=127.0.0.1 port=5432 user=mover dbname=source sslmode=disable password='` +
			kvEscape(password) + `'`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("pdm_quoting_%d", i)
			sql, err := createSubscriptionSQL(name, c.dsn, "connect = false")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			var stored string
			if err := conn.QueryRow(ctx, `SELECT subconninfo FROM pg_subscription WHERE subname = $1`, name).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			got, err := pgx.ParseConfig(stored)
			if err != nil {
				t.Fatalf("stored conninfo %q: %v", stored, err)
			}
			if got.Password != password || got.User != "mover" || got.Database != "source" || got.Host != "127.0.0.1" || got.Port != 5432 {
				t.Fatalf("stored conninfo %q reads as user %q password %q db %q host %s:%d", stored, got.User, got.Password, got.Database, got.Host, got.Port)
			}
			if _, err := conn.Exec(ctx, `ALTER SUBSCRIPTION `+name+` SET (slot_name = NONE)`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `DROP SUBSCRIPTION `+name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// urlEscape percent-encodes a password for the userinfo of a URL.
func urlEscape(password string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url.UserPassword("x", password).String(), "x:"), "@")
}

// kvEscape escapes a value for a quoted keyword/value conninfo (libpq:
// backslash and single quote are escaped with a backslash).
func kvEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}

// TestSubscriptionKeepsTLSVerification: certificate verification of the
// source carries over to the subscription (URL form) or the DSN is refused
// (keyword/value form, whose TLS settings pgconn does not give back), never
// silently weakened to sslmode=require.
func TestSubscriptionKeepsTLSVerification(t *testing.T) {
	t.Parallel()
	got, err := conninfoURL("postgres://mover:pw@db.internal:5432/source?sslmode=verify-full&sslrootcert=/etc/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != "/etc/ca.pem" {
		t.Fatalf("URL DSN lost its TLS settings: %s", got)
	}
	for _, dsn := range []string{
		"host=db.internal user=mover password=pw dbname=source sslmode=verify-full",
		"host=db.internal user=mover password=pw dbname=source sslmode=verify-ca sslrootcert=/etc/ca.pem",
		"host=db.internal user=mover password=pw dbname=source sslmode=require sslcert=/c.pem sslkey=/k.pem",
	} {
		if got, err := conninfoURL(dsn); err == nil {
			t.Errorf("%q rebuilt as %q: its TLS verification would be dropped", dsn, got)
		}
	}
}
