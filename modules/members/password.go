package members

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/patchdesk/patchdesk/modules/errs"
)

// ArgonParams are the argon2id cost parameters.
type ArgonParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultArgon follows the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane).
var DefaultArgon = ArgonParams{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

const argonKeyLen = 32

// hashPassword returns a PHC-format argon2id hash with a random salt.
func hashPassword(password string, p ArgonParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifyPassword checks password against a PHC hash in constant time, using
// the parameters stored in the hash so costs can be raised later.
func verifyPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("unsupported password hash")
	}
	var p ArgonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("parse password hash: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("parse password salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("parse password key: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// hasher runs argon2id with a bound on how many hashes run at once: each
// one holds MemoryKiB of memory (19 MiB by default), so unbounded concurrent
// sign-ins would let anyone grow the process by that much per request.
// Callers beyond the bound queue for at most wait, then get a 503 with
// Retry-After, which also sheds load that the CPUs could not serve anyway.
type hasher struct {
	params ArgonParams
	slots  chan struct{}
	wait   time.Duration
}

func newHasher(p ArgonParams, concurrent int, wait time.Duration) *hasher {
	return &hasher{params: p, slots: make(chan struct{}, concurrent), wait: wait}
}

// acquire takes a hashing slot, waiting at most h.wait.
func (h *hasher) acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, nil
	default:
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, nil
	case <-timer.C:
		return nil, &errs.Problem{Kind: errs.ErrUnavailable, Detail: "too many sign-ins at once; retry shortly", RetryAfter: 1}
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a password hashing slot: %w", ctx.Err())
	}
}

// hash is hashPassword within the concurrency bound.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return hashPassword(password, h.params)
}

// verify is verifyPassword within the concurrency bound.
func (h *hasher) verify(ctx context.Context, password, encoded string) (bool, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return verifyPassword(password, encoded)
}
