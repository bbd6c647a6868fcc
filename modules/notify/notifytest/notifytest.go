// Package notifytest runs real peers for notification tests: an SMTP server
// (emersion/go-smtp) that can be stopped and restarted on the same port, and
// a webhook receiver that verifies signatures and counts events.
package notifytest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/patchdesk/patchdesk/modules/notify"
)

// Mail is one message the SMTP server accepted.
type Mail struct {
	From string
	To   []string
	Data string
}

// SMTP is a real SMTP server on a fixed loopback port.
type SMTP struct {
	Addr string
	mu   sync.Mutex
	mail []Mail
	srv  *smtp.Server
}

// StartSMTP starts the server; it stops when the test ends.
func StartSMTP(t testing.TB) *SMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SMTP{Addr: ln.Addr().String()}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *SMTP) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop shuts the server down; connections are refused until Restart.
func (s *SMTP) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// Restart serves again on the same address.
func (s *SMTP) Restart(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger briefly
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart smtp: %v", err)
	}
	s.serve(ln)
}

// Messages returns what was received so far.
func (s *SMTP) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

// To returns the messages addressed to rcpt.
func (s *SMTP) To(rcpt string) []Mail {
	var out []Mail
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				out = append(out, m)
			}
		}
	}
	return out
}

type backend struct{ s *SMTP }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s    *SMTP
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.mail = append(x.s.mail, Mail{From: x.from, To: x.to, Data: string(b)})
	x.s.mu.Unlock()
	return nil
}

// Hook is a webhook receiver.
type Hook struct {
	*httptest.Server
	Secret string
	mu     sync.Mutex
	// byEvent counts valid deliveries per event id, byDelivery per
	// Idempotency-Key (delivery id).
	byEvent    map[string]int
	byDelivery map[string]int
	bodies     map[string][]byte
	at         map[string]time.Time
	invalid    int
	status     int
}

// StartHook starts a receiver that checks signatures with secret.
func StartHook(t testing.TB, secret string) *Hook {
	h := &Hook{Secret: secret, byEvent: map[string]int{}, byDelivery: map[string]int{}, bodies: map[string][]byte{}, at: map[string]time.Time{}, status: http.StatusOK}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *Hook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Header.Get(notify.HeaderSignature) != notify.Sign(h.Secret, body) || r.Header.Get(notify.HeaderTimestamp) == "" {
		h.invalid++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if h.status != http.StatusOK {
		w.WriteHeader(h.status)
		return
	}
	id := r.Header.Get(notify.HeaderEventID)
	h.byEvent[id]++
	h.byDelivery[r.Header.Get(notify.HeaderIdempotencyKey)]++
	h.bodies[id] = body
	h.at[id] = time.Now()
	w.WriteHeader(http.StatusOK)
}

// SetStatus makes the receiver answer status (200 restores success).
func (h *Hook) SetStatus(status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = status
}

// Counts returns valid deliveries per event id, and the number with a bad signature.
func (h *Hook) Counts() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.byEvent))
	for k, v := range h.byEvent {
		out[k] = v
	}
	return out, h.invalid
}

// Deliveries returns valid deliveries per Idempotency-Key (delivery id).
func (h *Hook) Deliveries() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.byDelivery))
	for k, v := range h.byDelivery {
		out[k] = v
	}
	return out
}

// Body returns the last body received for an event.
func (h *Hook) Body(eventID string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies[eventID]
}

// ReceivedAt returns when an event was last received.
func (h *Hook) ReceivedAt(eventID string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at[eventID]
}
