package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// captureStdout runs fn with os.Stdout redirected and returns what it printed.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	ferr := fn()
	os.Stdout = old
	w.Close()
	return <-done, ferr
}

// TestServeDemo runs `serve --demo` on a database that does not exist yet:
// it must create it, answer /healthz and /readyz, accept the demo login, and
// stop cleanly when its context ends (as on SIGTERM).
func TestServeDemo(t *testing.T) {
	dsn := tenancytest.NewDatabase(t) // created empty; serve migrates it
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "--demo", "--database-url", dsn, "--addr", addr, "--log-format", "json", "--data-dir", t.TempDir()})
	}()

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-errc:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /healthz: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s", res.Status)
	}
	body, _ := json.Marshal(map[string]string{"email": demoEmail, "password": demoPassword})
	res, err = http.Post(base+"/t/"+demoSlug+"/api/v1/sessions", "application/json", bytes.NewReader(body))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("demo login: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func TestMigrateAndTenantsCLI(t *testing.T) {
	dsn := tenancytest.NewDatabase(t)
	ctx := context.Background()
	for _, slug := range []string{"cli-one", "cli-two"} {
		out, err := captureStdout(t, func() error {
			return run(ctx, []string{"tenants", "create", slug, "--control-database-url", dsn, "--owner-email", "o@" + slug + ".test", "--owner-password", "long password 1"})
		})
		if err != nil || !strings.Contains(out, "created "+slug) {
			t.Fatalf("tenants create %s: %v %q", slug, err, out)
		}
	}
	out, err := captureStdout(t, func() error { return run(ctx, []string{"migrate", "--json", "--database-url", dsn}) })
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("migrate --json printed %d lines: %q", len(lines), out)
	}
	for _, l := range lines {
		var r struct {
			Slug  string `json:"slug"`
			To    int64  `json:"to"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Error != "" || r.To == 0 {
			t.Errorf("migrate line %q: %v", l, err)
		}
	}
	for _, cmd := range [][]string{{"search", "reindex", "cli-one"}, {"reports", "rebuild", "cli-one"}} {
		out, err := captureStdout(t, func() error { return run(ctx, append(cmd, "--database-url", dsn)) })
		if err != nil || !strings.Contains(out, cmd[1]+" of cli-one") {
			t.Fatalf("%v: %v %q", cmd, err, out)
		}
	}
	if _, err := captureStdout(t, func() error { return run(ctx, []string{"tenants", "suspend", "cli-two", "--database-url", dsn}) }); err != nil {
		t.Fatal(err)
	}
	out, err = captureStdout(t, func() error { return run(ctx, []string{"tenants", "list", "--database-url", dsn}) })
	if err != nil || !strings.Contains(out, "cli-one") || !strings.Contains(out, "suspended") {
		t.Fatalf("tenants list: %v %q", err, out)
	}
	if err := run(ctx, []string{"tenants", "create", "Bad Slug", "--control-database-url", dsn, "--owner-email", "a@b.test", "--owner-password", "long password 1"}); err == nil {
		t.Error("tenants create accepted an invalid slug")
	}
	if err := run(ctx, []string{"nonsense"}); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(ctx, []string{"migrate", "--database-url", "mysql://x"}); err == nil {
		t.Error("migrate accepted a non-postgres URL")
	}
}
