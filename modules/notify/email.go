package notify

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Mailer sends one RFC 5322 message of a tenant; id is the delivery.
type Mailer interface {
	Send(ctx context.Context, tenant, id uuid.UUID, from, to string, msg []byte) error
}

// NewMailer returns an SMTP mailer for smtp://host:port URLs, or one that
// writes .eml files into dir when smtpURL is empty.
func NewMailer(smtpURL, dir string) (Mailer, error) {
	if smtpURL == "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("mail directory: %w", err)
		}
		return dirMailer{dir: dir}, nil
	}
	u, err := url.Parse(smtpURL)
	if err != nil || u.Scheme != "smtp" || u.Host == "" {
		return nil, fmt.Errorf("PATCHDESK_SMTP_URL must look like smtp://host:port")
	}
	return smtpMailer{addr: u.Host}, nil
}

type smtpMailer struct{ addr string }

func (m smtpMailer) Send(ctx context.Context, _, _ uuid.UUID, from, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(m.addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp MAIL: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

// dirMailer is the mail spool: one directory per tenant, so deleting a
// tenant can delete its mail (RemoveSpool).
type dirMailer struct{ dir string }

func (m dirMailer) Send(_ context.Context, tenant, id uuid.UUID, _, _ string, msg []byte) error {
	dir := filepath.Join(m.dir, tenant.String())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("mail directory: %w", err)
	}
	tmp := filepath.Join(dir, id.String()+".eml.tmp")
	if err := os.WriteFile(tmp, msg, 0o640); err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, id.String()+".eml"))
}

// RemoveSpool deletes a tenant's mail spool under mailDir (the .eml files
// written when no SMTP server is configured); the tenant delete path calls
// it. A spool that does not exist is not an error.
func RemoveSpool(mailDir string, tenant uuid.UUID) error {
	if tenant == uuid.Nil {
		return fmt.Errorf("remove mail spool: no tenant")
	}
	if err := os.RemoveAll(filepath.Join(mailDir, tenant.String())); err != nil {
		return fmt.Errorf("remove mail spool: %w", err)
	}
	return nil
}

// email is a message to render.
type email struct {
	From, To, Subject, Body string
	// ReplyTo carries the tenant and ticket so a reply threads back to it.
	ReplyTo   string
	MessageID string
	// Thread is the Message-ID of the ticket's first message, referenced by the others.
	Thread string
	Date   time.Time
}

// render builds a MIME message: UTF-8 text, quoted-printable, encoded
// headers, threading headers, and Auto-Submitted so responders stay quiet.
func (e email) render() ([]byte, error) {
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", e.From)
	header("To", e.To)
	header("Reply-To", e.ReplyTo)
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(e.Subject)))
	header("Date", e.Date.UTC().Format(time.RFC1123Z))
	header("Message-ID", e.MessageID)
	if e.Thread != "" && e.Thread != e.MessageID {
		header("In-Reply-To", e.Thread)
		header("References", e.Thread)
	}
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(e.Body, "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return b.Bytes(), nil
}

// oneLine strips control characters so user text cannot inject headers.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// mailDomain is the domain of the From address, used for Message-IDs and Reply-To.
func mailDomain(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok {
			return d
		}
	}
	return "patchdesk.local"
}

// envelopeFrom is the bare address of a From header.
func envelopeFrom(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		return a.Address
	}
	return from
}
