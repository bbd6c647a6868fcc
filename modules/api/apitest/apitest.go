// Package apitest runs the complete PatchDesk HTTP API on a fresh database
// for tests that act as an outside client would.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/api"
	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/modules/jobs"
	"github.com/patchdesk/patchdesk/modules/members"
	"github.com/patchdesk/patchdesk/modules/notify"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
	"github.com/patchdesk/patchdesk/tenancy/tenancytest"
)

// Password is the password every member created by this package gets.
const Password = "correct horse battery"

// Server is a running API over its own database.
type Server struct {
	*httptest.Server
	Reg *tenancy.Registry
	App *api.App
	// DatabaseURL is the test database, for assertions made as its owner.
	DatabaseURL string
	// Logs holds every log line the server wrote.
	Logs *SyncBuffer
	// Metrics is the application's Prometheus registry.
	Metrics *obs.Metrics
	seq     atomic.Int64
	log     *slog.Logger
	// validated counts the responses checked against docs/openapi.yaml.
	validated atomic.Int64
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// New starts the API; cfg may adjust the configuration (nil for defaults).
func New(t testing.TB, cfg func(*api.Config)) *Server {
	t.Helper()
	return NewOn(t, tenancytest.NewDatabase(t), cfg)
}

// Sibling starts a second API process on the same control database, with
// its own registry and caches, following placement changes as a real
// replica does.
func (s *Server) Sibling(t testing.TB) *Server {
	t.Helper()
	sib := NewOn(t, s.DatabaseURL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sib.Reg.Listen(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return sib
}

// NewOn starts the API on an existing database.
func NewOn(t testing.TB, dsn string, cfg func(*api.Config)) *Server {
	t.Helper()
	reg, err := tenancy.Open(context.Background(), tenancy.Config{DatabaseURL: dsn, MaxConns: 8, SecretKey: tenancytest.SecretKey})
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	t.Cleanup(reg.Close)
	c := api.Config{
		// Real argon2id at a low cost so that suites stay fast.
		Members:     members.Config{Argon: members.ArgonParams{MemoryKiB: 1024, Time: 1, Threads: 1}},
		MembersHTTP: members.HandlerConfig{SignupsPerMinute: 100_000, LoginsPerMinute: 100_000},
		// Loopback webhook receivers, .eml files in a temporary directory,
		// and retries in milliseconds rather than minutes.
		Notify: notify.Config{
			MailDir: t.TempDir(), AllowPrivateWebhooks: true,
			MaxAttempts: 3, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		},
		Jobs: jobs.Config{Poll: 50 * time.Millisecond},
		// Attachments in a local directory (fileblob) unless a test names another store.
		Attachments: attachments.Config{BlobURL: "file://" + filepath.ToSlash(t.TempDir())},
	}
	if cfg != nil {
		cfg(&c)
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	metrics := obs.NewMetrics()
	metrics.Registry.MustRegister(obs.NewCachedCollector(reg.Collector(), 0))
	app, err := api.New(context.Background(), reg, log, metrics, c)
	if err != nil {
		t.Fatalf("build api: %v", err)
	}
	srv := httptest.NewServer(app.Handler)
	t.Cleanup(srv.Close)
	s := &Server{Server: srv, Reg: reg, App: app, DatabaseURL: dsn, Logs: logs, Metrics: metrics, log: log}
	// Every exchange through the server's client is checked against
	// docs/openapi.yaml (issue 20): tests prove the document as they go.
	contract, err := loadContract()
	if err != nil {
		t.Fatalf("load the API contract: %v", err)
	}
	client := srv.Client()
	client.Transport = &contractTransport{base: client.Transport, c: contract, server: s}
	t.Cleanup(func() { recordCount(s.validated.Load()) })
	return s
}

// Resp is a decoded response.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Items returns the "items" array of a list response.
func (r Resp) Items() []map[string]any {
	raw, _ := r.JSON["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

// IsProblem reports whether the response is problem+json with the given status.
func (r Resp) IsProblem(status int) bool {
	got, _ := r.JSON["status"].(float64)
	return r.Status == status && strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") && int(got) == status
}

func (r Resp) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Call sends a request; body is JSON-encoded unless it is a string (sent raw).
// headers are name, value pairs.
func (s *Server) Call(t testing.TB, method, path, token string, body any, headers ...string) Resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out := Resp{Status: res.StatusCode, Header: res.Header}
	out.Body, _ = io.ReadAll(res.Body)
	_ = json.Unmarshal(out.Body, &out.JSON)
	return out
}

// Signup creates a tenant and returns its owner's token.
func (s *Server) Signup(t testing.TB, slug string) string {
	t.Helper()
	r := s.Call(t, "POST", "/api/v1/signup", "", map[string]string{
		"slug": slug, "name": slug, "admin_email": "owner@" + slug + ".test", "admin_name": "Owner", "password": Password,
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("signup %s: %s", slug, r)
	}
	return r.JSON["token"].(string)
}

// Member is a member created by AddMember, with a session token.
type Member struct {
	ID, Email, Token string
}

// AddMember creates a member with role (as the owner) and logs them in.
func (s *Server) AddMember(t testing.TB, slug, ownerToken, role string) Member {
	t.Helper()
	email := fmt.Sprintf("%s-%d@%s.test", role, s.seq.Add(1), slug)
	r := s.Call(t, "POST", "/t/"+slug+"/api/v1/members", ownerToken, map[string]any{
		"email": email, "name": role, "role": role, "password": Password,
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("add %s to %s: %s", role, slug, r)
	}
	return Member{ID: r.JSON["id"].(string), Email: email, Token: s.Login(t, slug, email)}
}

// Login returns a session token for email.
func (s *Server) Login(t testing.TB, slug, email string) string {
	t.Helper()
	r := s.Call(t, "POST", "/t/"+slug+"/api/v1/sessions", "", map[string]string{"email": email, "password": Password})
	if r.Status != http.StatusCreated {
		t.Fatalf("login %s: %s", email, r)
	}
	return r.JSON["token"].(string)
}

// Admin connects to the server's database as its owner, for tests that read
// or break what tenant roles cannot reach; the connection closes with t.
func (s *Server) Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	return tenancytest.Connect(t, s.DatabaseURL)
}
