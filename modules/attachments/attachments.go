// Package attachments keeps files of tickets and comments in object storage
// (gocloud.dev/blob: a local directory by default, S3 in production) and
// their metadata and permissions in the tenant schema. Uploads stream to
// the store, never whole in memory; their type is sniffed from the bytes.
package attachments

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gabriel-vasile/mimetype"
	"github.com/google/uuid"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs: the one-command run
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs: S3-compatible stores in production
	"gocloud.dev/gcerrors"

	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/obs"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Limits.
const (
	// MaxSize is the largest file accepted: 25 MiB.
	MaxSize = 25 << 20
	// DefaultQuota is each tenant's storage quota unless configured: 10 GiB.
	DefaultQuota = 10 << 30
	// sniffLen is how many leading bytes the type is detected from
	// (mimetype's own default read limit).
	sniffLen = 3072
)

// Statuses of an attachment. Only available ones are downloadable.
const (
	StatusPendingScan = "pending_scan"
	StatusAvailable   = "available"
	StatusInfected    = "infected"
)

// Config configures the attachments service.
type Config struct {
	// BlobURL opens the bucket (file:///dir, s3://bucket?endpoint=…&region=…).
	BlobURL string
	// MaxSize bounds one file (default and ceiling 25 MiB; tests lower it).
	MaxSize int64
	// Quota bounds the bytes one tenant stores (default 10 GiB).
	Quota int64
}

// Tickets locates a ticket the subject may read: its id and whether the
// subject requested it (a customer's own ticket). A ticket they may not read
// is errs.ErrNotFound. tickets.Service implements it.
type Tickets interface {
	Ref(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64) (uuid.UUID, bool, error)
}

// Attachment is a stored file's metadata.
type Attachment struct {
	ID          uuid.UUID  `json:"id"`
	Name        string     `json:"name"`
	Size        int64      `json:"size"`
	ContentType string     `json:"content_type"`
	SHA256      string     `json:"sha256"`
	TicketID    uuid.UUID  `json:"-"`
	CommentID   *uuid.UUID `json:"-"`
	Internal    bool       `json:"-"`
	UploaderID  uuid.UUID  `json:"-"`
	Status      string     `json:"-"`
	CreatedAt   time.Time  `json:"-"`
}

// Service stores and serves attachments.
type Service struct {
	cfg     Config
	db      tenancy.TxRunner
	authz   *authz.Authorizer
	tickets Tickets
	bucket  *blob.Bucket
}

// NewService opens the bucket named by cfg.BlobURL and builds the service.
func NewService(ctx context.Context, cfg Config, db tenancy.TxRunner, az *authz.Authorizer, tickets Tickets) (*Service, error) {
	if db == nil || az == nil || tickets == nil {
		return nil, errors.New("attachments: database, authorizer and tickets are required")
	}
	if cfg.BlobURL == "" {
		return nil, errors.New("attachments: a blob URL is required (file:///dir or s3://bucket?…)")
	}
	cfg.MaxSize = min(cmp.Or(cfg.MaxSize, MaxSize), MaxSize)
	cfg.Quota = cmp.Or(cfg.Quota, DefaultQuota)
	if cfg.MaxSize < 0 || cfg.Quota < 0 {
		return nil, errors.New("attachments: limits must be positive")
	}
	bucket, err := blob.OpenBucket(ctx, cfg.BlobURL)
	if err != nil {
		return nil, fmt.Errorf("attachments: open bucket: %w", err)
	}
	return &Service{cfg: cfg, db: db, authz: az, tickets: tickets, bucket: bucket}, nil
}

// Close releases the bucket.
func (s *Service) Close() error { return s.bucket.Close() }

// Ping checks that the bucket answers, for /readyz.
func (s *Service) Ping(ctx context.Context) error {
	if _, err := s.bucket.IsAccessible(ctx); err != nil {
		return fmt.Errorf("attachments: bucket: %w", err)
	}
	return nil
}

// Key is the object key of an attachment. It holds no user input, and no
// database name: a tier move leaves it valid.
func Key(tenantID, id uuid.UUID) string {
	return "tenants/" + tenantID.String() + "/attachments/" + id.String()
}

// mayUpload reports whether the subject may add files to the ticket: whoever
// may write a reply or a note on it.
func (s *Service) mayUpload(ctx context.Context, sub authz.Subject, own bool) bool {
	return s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.CommentsPublic, Resource: authz.ResourceTickets, Own: own}) ||
		s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.CommentsInternal, Resource: authz.ResourceTickets, Own: own})
}

// maySee reports whether the subject may read an attachment of a ticket they
// may read: like the comment it belongs to (internal notes' files never
// reach customers); a file no comment has claimed yet, only its uploader
// and staff who read internal notes.
func (s *Service) maySee(ctx context.Context, sub authz.Subject, a *Attachment) bool {
	staff := s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.CommentsReadInternal, Resource: authz.ResourceTickets})
	switch {
	case staff:
		return true
	case a.CommentID == nil:
		return a.UploaderID == sub.MemberID
	default:
		return !a.Internal
	}
}

// UploadParams is one upload.
type UploadParams struct {
	// Name is the client's file name, cleaned before it is kept.
	Name string
	// Body is read to its end, at most MaxSize bytes.
	Body io.Reader
}

// Upload streams a file to the store and records it on the ticket. Over the
// size limit it is errs.ErrTooLarge, over the tenant's quota errs.ErrInvalid,
// and in both cases (and on any other failure) neither blob nor row is left.
func (s *Service) Upload(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, p UploadParams) (*Attachment, error) {
	ticketID, own, err := s.tickets.Ref(ctx, sub, tn, number)
	if err != nil {
		return nil, err
	}
	if !s.mayUpload(ctx, sub, own) {
		return nil, errs.Errorf(errs.ErrForbidden, "role %s may not add files to this ticket", sub.Role)
	}
	// A cheap early refusal; the binding check is made again with the row.
	var inUse int64
	if err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		inUse, err = used(ctx, tx)
		return err
	}); err != nil {
		return nil, err
	}
	if inUse >= s.cfg.Quota {
		return nil, s.overQuota(inUse)
	}
	a := &Attachment{ID: uuid.New(), TicketID: ticketID, UploaderID: sub.MemberID, Name: CleanName(p.Name), Status: StatusAvailable}
	key := Key(tn.ID, a.ID)
	if err := s.store(ctx, key, a, p.Body); err != nil {
		return nil, err
	}
	var out *Attachment
	err = s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		if err := lockQuota(ctx, tx); err != nil {
			return err
		}
		n, err := used(ctx, tx)
		if err != nil {
			return err
		}
		if n+a.Size > s.cfg.Quota {
			return s.overQuota(n)
		}
		out, err = insert(ctx, tx, a)
		return err
	})
	if err != nil {
		s.remove(ctx, key)
		return nil, err
	}
	return out, nil
}

func (s *Service) overQuota(inUse int64) error {
	return errs.Errorf(errs.ErrInvalid, "the workspace's attachment storage quota of %d bytes is used up (%d bytes stored); delete files or ask the operator for more",
		s.cfg.Quota, inUse)
}

// store streams body to key, filling a's size, type and digest. The type is
// sniffed from the first bytes. Over the limit, or on any error, the write
// is aborted (its context cancelled before Close, so the driver discards
// it) and the key removed in case a driver kept a partial object.
func (s *Service) store(ctx context.Context, key string, a *Attachment, body io.Reader) (err error) {
	limited := io.LimitReader(body, s.cfg.MaxSize+1)
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(limited, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return errs.Errorf(errs.ErrInvalidInput, "the file could not be read: %v", err)
	}
	head = head[:n]
	if n == 0 {
		return errs.Errorf(errs.ErrInvalid, "the file is empty")
	}
	a.ContentType = mimetype.Detect(head).String()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: a.ContentType})
	if err != nil {
		return fmt.Errorf("open attachment writer: %w", err)
	}
	defer func() {
		if err != nil {
			cancel()
			_ = w.Close()
			s.remove(ctx, key)
		}
	}()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(w, h), io.MultiReader(bytes.NewReader(head), limited))
	if err != nil {
		return errs.Errorf(errs.ErrInvalidInput, "the upload was interrupted: %v", err)
	}
	if size > s.cfg.MaxSize {
		return errs.Errorf(errs.ErrTooLarge, "a file may be at most %d bytes", s.cfg.MaxSize)
	}
	if err = w.Close(); err != nil {
		return fmt.Errorf("store attachment: %w", err)
	}
	a.Size, a.SHA256 = size, hex.EncodeToString(h.Sum(nil))
	return nil
}

// remove deletes a blob whatever the request's fate; a missing one is fine.
func (s *Service) remove(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		// An orphan blob costs storage but no correctness: the row is what
		// makes a file exist.
		obs.Logger(ctx).WarnContext(ctx, "attachment blob left behind", "key", key, "err", err)
	}
}

// File is an open attachment: its metadata and its bytes, seekable.
type File struct {
	*Attachment
	Body *blob.Reader
}

// Open returns an attachment the subject may read, ready to stream; the
// caller closes Body. Another tenant's id, another ticket's, or one the
// subject may not see are all errs.ErrNotFound.
func (s *Service) Open(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, id uuid.UUID) (*File, error) {
	ticketID, _, err := s.tickets.Ref(ctx, sub, tn, number)
	if err != nil {
		return nil, err
	}
	var a *Attachment
	if err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		a, err = get(ctx, tx, ticketID, id)
		return err
	}); err != nil {
		return nil, err
	}
	if !s.maySee(ctx, sub, a) || a.Status != StatusAvailable {
		return nil, errNotFound
	}
	r, err := s.bucket.NewReader(ctx, Key(tn.ID, a.ID), nil)
	if err != nil {
		return nil, fmt.Errorf("open attachment %s: %w", a.ID, err)
	}
	return &File{Attachment: a, Body: r}, nil
}

// MaxPerComment bounds the files one comment may claim.
const MaxPerComment = 20

// Claim gives files to a new comment, inside the comment's own transaction:
// each must be an available upload of the comment's author on the same
// ticket that no comment has claimed yet. They then inherit the comment's
// visibility (internal notes' files never reach customers).
func (s *Service) Claim(ctx context.Context, tx tenancy.Tx, ticketID, commentID, author uuid.UUID, internal bool, ids []uuid.UUID) ([]*Attachment, error) {
	ids = slices.Compact(slices.SortedFunc(slices.Values(ids), func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }))
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxPerComment {
		return nil, errs.Errorf(errs.ErrInvalid, "at most %d attachments per comment", MaxPerComment)
	}
	got, err := claim(ctx, tx, ticketID, commentID, author, internal, ids)
	if err != nil {
		return nil, err
	}
	if len(got) != len(ids) {
		return nil, errs.Errorf(errs.ErrInvalid, "attachment_ids must name your own uploads on this ticket that no comment has claimed yet")
	}
	return got, nil
}

// ForComments lists the files of the given comments, by comment id, for
// lists the caller already filtered by visibility.
func (s *Service) ForComments(ctx context.Context, tx tenancy.Tx, commentIDs []uuid.UUID) (map[uuid.UUID][]*Attachment, error) {
	out := map[uuid.UUID][]*Attachment{}
	if len(commentIDs) == 0 {
		return out, nil
	}
	all, err := ofComments(ctx, tx, commentIDs)
	if err != nil {
		return nil, err
	}
	for _, a := range all {
		out[*a.CommentID] = append(out[*a.CommentID], a)
	}
	return out, nil
}
