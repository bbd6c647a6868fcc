package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// Webhook request headers.
const (
	HeaderSignature = "X-PatchDesk-Signature"
	HeaderEventID   = "X-PatchDesk-Event-Id"
	HeaderEvent     = "X-PatchDesk-Event"
	HeaderTimestamp = "X-PatchDesk-Timestamp"
	// HeaderIdempotencyKey is the delivery id: the same for every attempt at
	// one delivery, so a receiver drops the repeat a crash can cause.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Sign returns the signature header value for body: sha256=<hex HMAC-SHA256>.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// errPrivateTarget refuses webhook targets inside the operator's network.
var errPrivateTarget = errors.New("webhook target is a private, loopback or link-local address")

// privateAddr is the special-purpose registry check of ssrf.go, used on the
// dialled address and at registration.
func privateAddr(a netip.Addr) bool { return blockedTarget(a) }

// newWebhookClient returns an HTTP client that, unless allowPrivate, refuses
// to connect to private addresses: the check runs on the address actually
// dialled, so DNS rebinding cannot get around it.
func newWebhookClient(timeout time.Duration, allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || privateAddr(ap.Addr()) {
				return errPrivateTarget
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// validateWebhookURL checks a target at registration time.
func validateWebhookURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return errs.Errorf(errs.ErrInvalid, "url must be an absolute http(s) URL without credentials")
	}
	if allowPrivate {
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return errs.Errorf(errs.ErrInvalid, "url host %q does not resolve", u.Hostname())
	}
	for _, a := range addrs {
		if privateAddr(a) {
			return errs.Errorf(errs.ErrInvalid, "url %s", errPrivateTarget)
		}
	}
	return nil
}

// postWebhook sends one signed delivery; any status outside 2xx is a failure.
func postWebhook(ctx context.Context, client *http.Client, target, secret, deliveryID, eventID, eventType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "PatchDesk-Webhooks/1")
	req.Header.Set(HeaderSignature, Sign(secret, body))
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderIdempotencyKey, deliveryID)
	req.Header.Set(HeaderEvent, eventType)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook POST: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("webhook POST: target answered HTTP %d", res.StatusCode)
	}
	return nil
}
