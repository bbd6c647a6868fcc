package tenancytest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Cluster is a throwaway PostgreSQL cluster on a free loopback port, for the
// tests that stop, restart or crash the database: the shared cluster other
// tests run on is never touched.
type Cluster struct {
	// Port is the loopback port the cluster listens on.
	Port     string
	bin      string
	data     string
	cred     *syscall.Credential
	settings []string
}

// NewCluster creates and starts a cluster with an empty database
// "patchdesk"; it is stopped when the test ends. It fails, never skips,
// when the PostgreSQL server binaries are missing (ops/postgres.sh installs
// them), so a missing dependency cannot pass as a green run. settings are
// extra server settings, "name=value" (such as "wal_level=logical" for a
// cluster taking part in tier moves).
func NewCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql (run ops/postgres.sh)")
	}
	sort.Strings(bins)
	dir := t.TempDir()
	c := &Cluster{Port: strconv.Itoa(freePort(t)), bin: filepath.Dir(bins[len(bins)-1]), data: filepath.Join(dir, "pg"), settings: settings}
	if os.Geteuid() == 0 {
		c.runAsPostgres(t, dir)
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Ctl(t, "start")
	t.Cleanup(func() { _ = c.command("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop").Run() })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+c.Port+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE patchdesk`); err != nil {
		t.Fatal(err)
	}
	return c
}

// runAsPostgres makes the cluster's commands run as the postgres user:
// initdb refuses to run as root.
func (c *Cluster) runAsPostgres(t testing.TB, dir string) {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root without a postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// URL is the connection URL of the cluster's "patchdesk" database.
func (c *Cluster) URL() string {
	return "postgres://postgres@127.0.0.1:" + c.Port + "/patchdesk?sslmode=disable"
}

// Ctl runs pg_ctl action (start, stop, restart; extra arguments such as
// "-m", "immediate" follow) and waits for it to finish.
func (c *Cluster) Ctl(t testing.TB, action string, extra ...string) {
	t.Helper()
	opts := "-c port=" + c.Port + " -c listen_addresses=127.0.0.1 -c unix_socket_directories=" + c.data +
		" -c fsync=off -c max_connections=200"
	for _, s := range c.settings {
		opts += " -c " + s
	}
	args := append([]string{"-D", c.data, "-w", "-t", "60", "-l", filepath.Join(c.data, "server.log"), "-o", opts, action}, extra...)
	if out, err := c.command("pg_ctl", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.data, "server.log"))
		if len(log) > 3000 {
			log = log[len(log)-3000:]
		}
		t.Fatalf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
