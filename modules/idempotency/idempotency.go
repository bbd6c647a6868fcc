// Package idempotency makes retried POSTs safe: a request carrying an
// Idempotency-Key is done once per caller and key, and a retry within 24
// hours gets the first response again (status and body) without doing
// anything again. Keys live in the tenant's schema (idempotency_keys).
//
// The key is bound atomically with the effect: the middleware puts a
// tenancy.CommitHook in the request context, and the first transaction of
// the request that writes anything inserts the key row before it commits. So
// the row exists exactly when the effect does, and a concurrent duplicate,
// whose own insert waits on the first one's uncommitted row, finds another
// owner and rolls its transaction (its whole effect) back. The response is
// recorded right after the handler returns, in a second short transaction.
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/modules/respond"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Header is the request header that names a retry-safe request.
const Header = "Idempotency-Key"

// ReplayedHeader marks a response that is the replay of a stored one.
const ReplayedHeader = "Idempotent-Replayed"

// TTL is how long a key is remembered.
const TTL = 24 * time.Hour

// MaxKeyLength bounds the Idempotency-Key header.
const MaxKeyLength = 255

// maxBody bounds the request body the middleware reads to hash it: above
// the 25 MiB attachment limit, so the handler still answers its own 413.
const maxBody = 26 << 20

// Config configures the store.
type Config struct {
	// Wait is how long a duplicate waits for the first request's response
	// before answering 409 (default 10 s).
	Wait time.Duration
	// Poll is how often a waiting duplicate looks again (default 20 ms).
	Poll time.Duration
}

// Store keeps idempotency keys in tenant schemas.
type Store struct {
	cfg Config
	tx  tenancy.TxRunner
}

// NewStore builds a store over the tenants' scoped transactions.
func NewStore(cfg Config, tx tenancy.TxRunner) (*Store, error) {
	if tx == nil {
		return nil, errors.New("idempotency: a transaction runner is required")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	return &Store{cfg: cfg, tx: tx}, nil
}

// errLost is what the commit hook of a duplicate returns: another request
// bound the key first, so this one's transaction must not commit.
var errLost = errs.Errorf(errs.ErrConflict, "a request with this Idempotency-Key is in progress")

// request is one keyed request: who, which key, what was asked.
type request struct {
	tenant      *tenancy.Tenant
	member      uuid.UUID
	key         string
	keyHash     []byte
	requestHash []byte
	owner       uuid.UUID
	lost        atomic.Bool // the commit hook met another owner
	bound       atomic.Bool // the commit hook bound the key to this request
}

// stored is a row of idempotency_keys.
type stored struct {
	requestHash []byte
	status      *int
	response    []byte
}

// response is what is sealed into idempotency_keys.response.
type response struct {
	ContentType string `json:"content_type,omitempty"`
	Location    string `json:"location,omitempty"`
	Body        []byte `json:"body"`
}

// Middleware makes POSTs with an Idempotency-Key retry-safe. It must run
// after authentication (the caller is part of the key) and inside the tenant
// router. Requests without the header, other methods and unauthenticated
// requests pass through untouched.
func (s *Store) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, present := r.Header[Header]
		sub, authed := authz.SubjectFrom(r.Context())
		t := tenancy.FromContext(r.Context())
		if r.Method != http.MethodPost || !present || !authed || t == nil {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) != 1 || !validKey(key[0]) {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput,
				"%s must be one header of 1 to %d printable ASCII characters (a random UUID is best)", Header, MaxKeyLength))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			respond.Error(w, r, errs.Errorf(errs.ErrInvalidInput, "request body could not be read"))
			return
		}
		if len(body) > maxBody {
			respond.Error(w, r, errs.Errorf(errs.ErrTooLarge, "body exceeds %d bytes", maxBody))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		req := &request{tenant: t, member: sub.MemberID, key: key[0], keyHash: keyHash(key[0]),
			requestHash: requestHash(r, body), owner: uuid.New()}
		s.serve(w, r, next, req)
	})
}

func (s *Store) serve(w http.ResponseWriter, r *http.Request, next http.Handler, req *request) {
	ctx := r.Context()
	row, found, err := s.lookup(ctx, req)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if found {
		s.answer(w, r, req, row)
		return
	}
	rec := newRecorder()
	next.ServeHTTP(rec, r.WithContext(tenancy.WithCommitHook(ctx, req.hook)))
	if req.lost.Load() {
		// Another request with this key won the race; this one's writes were
		// rolled back. Answer what the winner answers.
		s.await(w, r, req)
		return
	}
	if req.bound.Load() {
		// Record the response even if the client has gone: its retry must
		// find it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.record(sctx, req, rec); err != nil {
			// The effect is committed; only the replay is lost (a retry gets
			// 409 naming that). The client still gets its answer now.
			obs.Logger(ctx).ErrorContext(ctx, "record idempotent response", "err", err)
		}
	}
	rec.flush(w)
}

// hook binds the key in the request's first writing transaction: the insert
// happens only when the transaction has written something
// (pg_current_xact_id_if_assigned), so reads do not bind it. A row left by
// an earlier transaction of the same request is fine; a row of another
// request means this one is a duplicate, and its transaction must roll back.
func (req *request) hook(ctx context.Context, tx tenancy.Tx) error {
	if tx.Tenant().ID != req.tenant.ID {
		return nil
	}
	var owner uuid.UUID
	err := tx.QueryRow(ctx, qBind, req.member, req.keyHash, req.requestHash, req.owner, TTL.Seconds()).Scan(&owner)
	if err == nil {
		req.bound.Store(true)
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("bind idempotency key: %w", err)
	}
	// No insert: a read-only transaction, or a live row already holds the
	// key. A new statement sees rows committed meanwhile.
	err = tx.QueryRow(ctx, qOwner, req.member, req.keyHash, TTL.Seconds()).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("read idempotency key: %w", err)
	case owner != req.owner:
		req.lost.Store(true)
		return errLost
	}
	return nil
}

// lookup reads the live row of the key, if any.
func (s *Store) lookup(ctx context.Context, req *request) (stored, bool, error) {
	var row stored
	found := false
	err := s.tx.Tx(ctx, req.tenant, func(ctx context.Context, tx tenancy.Tx) error {
		err := tx.QueryRow(ctx, qLookup, req.member, req.keyHash, TTL.Seconds()).Scan(&row.requestHash, &row.status, &row.response)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return stored{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	return row, found, nil
}

// answer responds to a request whose key is already bound: 422 for another
// request, the stored response once there is one, else it waits for it.
func (s *Store) answer(w http.ResponseWriter, r *http.Request, req *request, row stored) {
	switch {
	case !bytes.Equal(row.requestHash, req.requestHash):
		respond.Error(w, r, errs.Errorf(errs.ErrInvalid,
			"this %s was already used for a different request (another body, method or path) in the last 24 hours", Header))
	case row.status == nil:
		s.await(w, r, req)
	default:
		s.replay(w, r, req, row)
	}
}

// await waits for the response of the request that bound the key.
func (s *Store) await(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	deadline := time.Now().Add(s.cfg.Wait)
	for {
		row, found, err := s.lookup(ctx, req)
		switch {
		case err != nil:
			respond.Error(w, r, err)
			return
		case found && (row.status != nil || !bytes.Equal(row.requestHash, req.requestHash)):
			s.answer(w, r, req, row)
			return
		case !found:
			// The winner's transaction rolled back after all (or the row
			// expired): nothing was done, so the client may simply retry.
			respond.Error(w, r, &errs.Problem{Kind: errs.ErrConflict, RetryAfter: 1,
				Detail: "a concurrent request with this " + Header + " did not complete; retry"})
			return
		case time.Now().After(deadline):
			respond.Error(w, r, &errs.Problem{Kind: errs.ErrConflict, RetryAfter: 1,
				Detail: "a request with this " + Header + " took effect but its response is not recorded yet (still running, or the server stopped before recording it); retry later, or look the object up"})
			return
		}
		select {
		case <-ctx.Done():
			respond.Error(w, r, ctx.Err())
			return
		case <-time.After(s.cfg.Poll):
		}
	}
}

// replay writes the stored response.
func (s *Store) replay(w http.ResponseWriter, r *http.Request, req *request, row stored) {
	res, err := open(req, row.response)
	if err != nil {
		respond.Error(w, r, fmt.Errorf("replay idempotent response: %w", err))
		return
	}
	h := w.Header()
	if res.ContentType != "" {
		h.Set("Content-Type", res.ContentType)
	}
	if res.Location != "" {
		h.Set("Location", res.Location)
	}
	h.Set(ReplayedHeader, "true")
	w.WriteHeader(*row.status)
	_, _ = w.Write(res.Body)
}

// record stores the response of the request that bound the key.
func (s *Store) record(ctx context.Context, req *request, rec *recorder) error {
	sealed, err := seal(req, response{ContentType: rec.header.Get("Content-Type"), Location: rec.header.Get("Location"), Body: rec.body.Bytes()})
	if err != nil {
		return err
	}
	return s.tx.Tx(ctx, req.tenant, func(ctx context.Context, tx tenancy.Tx) error {
		_, err := tx.Exec(ctx, qRecord, req.member, req.keyHash, req.owner, rec.status, sealed)
		return err
	})
}

// validKey accepts 1..MaxKeyLength printable ASCII characters.
func validKey(k string) bool {
	if k == "" || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// keyHash is what identifies a key in the table: the key itself, which
// also seals the response, is not stored.
func keyHash(key string) []byte {
	h := sha256.Sum256([]byte("patchdesk idempotency key\x00" + key))
	return h[:]
}

// requestHash identifies what was asked: method, path and body. A JSON body
// is compared by meaning (key order and spacing do not matter), anything
// else byte for byte.
func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s %s\x00", r.Method, r.URL.EscapedPath())
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && dec.Decode(&struct{}{}) == io.EOF {
		if canon, err := json.Marshal(v); err == nil {
			_, _ = h.Write([]byte("json\x00"))
			_, _ = h.Write(canon)
			return h.Sum(nil)
		}
	}
	_, _ = h.Write([]byte("raw\x00"))
	_, _ = h.Write(body)
	return h.Sum(nil)
}

// sealer is AES-256-GCM keyed by the Idempotency-Key and the caller: only a
// request bearing the key can read the response back.
func sealer(req *request) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte("patchdesk idempotency seal\x00" + req.member.String() + "\x00" + req.key))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("idempotency seal: %w", err)
	}
	return cipher.NewGCM(block)
}

func seal(req *request, res response) ([]byte, error) {
	plain, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode idempotent response: %w", err)
	}
	gcm, err := sealer(req)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("idempotency seal: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, req.keyHash), nil
}

func open(req *request, sealed []byte) (response, error) {
	var res response
	gcm, err := sealer(req)
	if err != nil {
		return res, err
	}
	if len(sealed) < gcm.NonceSize() {
		return res, errors.New("stored response is truncated")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], req.keyHash)
	if err != nil {
		return res, fmt.Errorf("open stored response: %w", err)
	}
	return res, json.Unmarshal(plain, &res)
}

// recorder buffers a handler's response so that it can be stored before the
// client sees it, or dropped when the request turned out a duplicate.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(p)
}

// flush sends the buffered response.
func (rec *recorder) flush(w http.ResponseWriter) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmpStatus(rec.status))
	_, _ = w.Write(rec.body.Bytes())
}

func cmpStatus(s int) int {
	if s == 0 {
		return http.StatusOK
	}
	return s
}

// The statements of the store; $ttl is in seconds. A row older than the TTL
// is treated as absent everywhere and taken over by a new binding.
const (
	qBind = `INSERT INTO idempotency_keys (member_id, key_hash, request_hash, owner)
		SELECT $1, $2, $3, $4 WHERE pg_current_xact_id_if_assigned() IS NOT NULL
		ON CONFLICT (member_id, key_hash) DO UPDATE
			SET request_hash = EXCLUDED.request_hash, owner = EXCLUDED.owner, created_at = now(), status = NULL, response = NULL
			WHERE idempotency_keys.created_at < now() - make_interval(secs => $5)
		RETURNING owner`
	qOwner = `SELECT owner FROM idempotency_keys
		WHERE member_id = $1 AND key_hash = $2 AND created_at >= now() - make_interval(secs => $3)`
	qLookup = `SELECT request_hash, status, response FROM idempotency_keys
		WHERE member_id = $1 AND key_hash = $2 AND created_at >= now() - make_interval(secs => $3)`
	qRecord = `UPDATE idempotency_keys SET status = $4, response = $5
		WHERE member_id = $1 AND key_hash = $2 AND owner = $3`
)
