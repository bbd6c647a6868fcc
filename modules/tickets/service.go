package tickets

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchdesk/patchdesk/modules/address"
	"github.com/patchdesk/patchdesk/modules/authz"
	"github.com/patchdesk/patchdesk/modules/errs"
	"github.com/patchdesk/patchdesk/modules/page"
	"github.com/patchdesk/patchdesk/tenancy"
)

// Limits on ticket content.
const (
	MaxTitle   = 200
	MaxBody    = 64 << 10
	MaxTags    = 20
	MaxTagLen  = 40
	maxRequest = 512 << 10 // a 64 KiB body may grow when JSON-escaped
)

// Config configures the tickets service.
type Config struct {
	// ReopenWindow is how long after closing a customer reply reopens a ticket (default 14 days).
	ReopenWindow time.Duration
}

// Directory answers questions about members; members.Service implements it.
type Directory interface {
	ActiveRole(ctx context.Context, tx tenancy.Tx, id uuid.UUID) (string, error)
}

// Attachments claims uploaded files for new comments and lists comments'
// files, inside the comments' transaction; api wires package attachments.
type Attachments interface {
	Claim(ctx context.Context, tx tenancy.Tx, ticketID, commentID, author uuid.UUID, internal bool, ids []uuid.UUID) ([]Attachment, error)
	ForComments(ctx context.Context, tx tenancy.Tx, commentIDs []uuid.UUID) (map[uuid.UUID][]Attachment, error)
}

// Service implements tickets, comments and the timeline.
type Service struct {
	cfg     Config
	db      tenancy.TxRunner
	authz   *authz.Authorizer
	dir     Directory
	metrics *metrics
	files   Attachments
}

// UseAttachments connects the attachments module, which is built after
// this service since it locates tickets through it. Call it before serving.
func (s *Service) UseAttachments(a Attachments) { s.files = a }

// NewService builds the tickets service and registers its metrics.
func NewService(cfg Config, db tenancy.TxRunner, az *authz.Authorizer, dir Directory, reg prometheus.Registerer) (*Service, error) {
	cfg.ReopenWindow = cmp.Or(cfg.ReopenWindow, 14*24*time.Hour)
	if db == nil || az == nil || dir == nil || reg == nil {
		return nil, errors.New("tickets: database, authorizer, directory and metrics registry are required")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, db: db, authz: az, dir: dir, metrics: m}, nil
}

// owns reports whether the subject requested the ticket (customers' scope).
// Both addresses are stored in canonical form (package address), so the
// comparison is byte equality — the same one the database's unique index
// and list filters make. Never EqualFold: Go's Unicode folding and
// PostgreSQL's lower() disagree, which once let a customer read another's
// tickets.
func owns(sub authz.Subject, t *Ticket) bool {
	return t.RequesterEmail != nil && sub.Email != "" && *t.RequesterEmail == sub.Email
}

func (s *Service) can(ctx context.Context, sub authz.Subject, action string, t *Ticket) bool {
	own := t != nil && owns(sub, t)
	return s.authz.Allowed(ctx, sub.Role, authz.Request{Action: action, Resource: authz.ResourceTickets, Own: own})
}

func (s *Service) check(ctx context.Context, sub authz.Subject, action string, t *Ticket) error {
	if !s.can(ctx, sub, action, t) {
		return errs.Errorf(errs.ErrForbidden, "role %s may not %s", sub.Role, action)
	}
	return nil
}

// load fetches a ticket the subject may read; one they may not read is 404,
// so its existence is not revealed.
func (s *Service) load(ctx context.Context, tx tenancy.Tx, sub authz.Subject, number int64, forUpdate bool) (*Ticket, error) {
	t, err := getTicket(ctx, tx, number, forUpdate)
	if err != nil {
		return nil, err
	}
	if !s.can(ctx, sub, authz.TicketsRead, t) {
		return nil, errTicketNotFound
	}
	return t, nil
}

func validateTitle(title string) error {
	if n := utf8.RuneCountInString(strings.TrimSpace(title)); n < 1 || n > MaxTitle {
		return errs.Errorf(errs.ErrInvalid, "title must be 1-%d characters", MaxTitle)
	}
	return nil
}

func validateBody(body string, required bool) error {
	if len(body) > MaxBody {
		return errs.Errorf(errs.ErrInvalid, "body must be at most %d bytes", MaxBody)
	}
	if required && strings.TrimSpace(body) == "" {
		return errs.Errorf(errs.ErrInvalid, "body must not be empty")
	}
	return nil
}

func validatePriority(p string) error {
	if !slices.Contains(Priorities, p) {
		return errs.Errorf(errs.ErrInvalid, "priority must be one of %s", strings.Join(Priorities, ", "))
	}
	return nil
}

// normalizeTags trims, de-duplicates (keeping order) and validates tags.
func normalizeTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	for _, tag := range tags {
		tag = strings.TrimSpace(tag)
		if n := utf8.RuneCountInString(tag); n < 1 || n > MaxTagLen {
			return nil, errs.Errorf(errs.ErrInvalid, "tags must be 1-%d characters", MaxTagLen)
		}
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	if len(out) > MaxTags {
		return nil, errs.Errorf(errs.ErrInvalid, "at most %d tags", MaxTags)
	}
	return out, nil
}

// checkAssignee verifies that id may hold tickets (an active agent, admin or owner).
func (s *Service) checkAssignee(ctx context.Context, tx tenancy.Tx, id uuid.UUID) error {
	role, err := s.dir.ActiveRole(ctx, tx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return errs.Errorf(errs.ErrInvalid, "assignee %s is not an active member", id)
	}
	if err != nil {
		return err
	}
	if !s.authz.Allowed(ctx, role, authz.Request{Action: authz.TicketsAssignable, Resource: authz.ResourceTickets}) {
		return errs.Errorf(errs.ErrInvalid, "a %s cannot be assigned tickets", role)
	}
	return nil
}

// CreateParams is the body of POST /tickets.
type CreateParams struct {
	Title          string     `json:"title"`
	Body           string     `json:"body"`
	Priority       *string    `json:"priority"`
	RequesterEmail *string    `json:"requester_email"`
	AssigneeID     *uuid.UUID `json:"assignee_id"`
	Tags           []string   `json:"tags"`
}

// Create opens a ticket with number = previous + 1, its created event and outbox event.
func (s *Service) Create(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, p CreateParams) (*Ticket, error) {
	if err := s.check(ctx, sub, authz.TicketsCreate, nil); err != nil {
		return nil, err
	}
	t := &Ticket{Title: strings.TrimSpace(p.Title), Body: p.Body, Status: StatusOpen, Priority: cmp.Or(deref(p.Priority), DefaultPriority),
		AssigneeID: p.AssigneeID, RequesterEmail: p.RequesterEmail}
	tags, err := normalizeTags(p.Tags)
	if err != nil {
		return nil, err
	}
	t.Tags = tags
	if err := errs.FirstError(validateTitle(p.Title), validateBody(p.Body, false), validatePriority(t.Priority)); err != nil {
		return nil, err
	}
	if t.Priority != DefaultPriority || len(t.Tags) > 0 {
		if err := s.check(ctx, sub, authz.TicketsClassify, nil); err != nil {
			return nil, errs.Errorf(errs.ErrForbidden, "role %s may not set a ticket's priority or tags", sub.Role)
		}
	}
	if err := s.resolveRequester(ctx, sub, t); err != nil {
		return nil, err
	}
	if t.AssigneeID != nil {
		if err := s.check(ctx, sub, authz.TicketsAssign, nil); err != nil {
			return nil, err
		}
	}
	var created *Ticket
	err = s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		if t.AssigneeID != nil {
			if err := s.checkAssignee(ctx, tx, *t.AssigneeID); err != nil {
				return err
			}
		}
		var err error
		if created, err = insertTicket(ctx, tx, t, sub.MemberID); err != nil {
			return err
		}
		// A new ticket's only watcher is its creator (watchersOf would
		// find just created_by).
		watchers := []uuid.UUID{}
		if sub.MemberID != uuid.Nil {
			watchers = append(watchers, sub.MemberID)
		}
		return s.record(ctx, tx, created, sub.MemberID, []pendingEvent{{Type: EventCreated, Data: map[string]any{
			"title": created.Title, "status": created.Status, "priority": created.Priority,
			"assignee_id": created.AssigneeID, "requester_email": created.RequesterEmail, "tags": created.Tags,
		}}}, nil, watchers)
	})
	if err != nil {
		return nil, err
	}
	// Counted only once committed: the callback may run twice (a Tx retried
	// after a tier move or a stale cached plan).
	s.metrics.created.WithLabelValues(tn.Tier).Inc()
	s.metrics.outboxWritten.Inc()
	return created, nil
}

// resolveRequester sets and checks the requester, in canonical form:
// customers always request for themselves; staff default to themselves.
func (s *Service) resolveRequester(ctx context.Context, sub authz.Subject, t *Ticket) error {
	if t.RequesterEmail == nil || *t.RequesterEmail == "" {
		t.RequesterEmail = &sub.Email
		return nil
	}
	requester, err := address.Field("requester_email", *t.RequesterEmail)
	if err != nil {
		return err
	}
	t.RequesterEmail = &requester
	// A requester other than oneself is a staff-only power: customers cannot
	// open tickets in someone else's name.
	if requester != sub.Email && !s.can(ctx, sub, authz.TicketsUpdate, nil) {
		return errs.Errorf(errs.ErrForbidden, "customers open tickets for themselves only")
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Get returns a ticket the subject may read.
func (s *Service) Get(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64) (*Ticket, error) {
	var t *Ticket
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		t, err = s.load(ctx, tx, sub, number, false)
		return err
	})
	return t, err
}

// ListParams are the filters and page of GET /tickets.
type ListParams struct {
	Status, Priority, Tag string
	AssigneeID            uuid.UUID
	Cursor                string
	Limit                 int
}

// List pages tickets newest-updated first; customers see only their own.
func (s *Service) List(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, p ListParams) (*page.Page[*Ticket], error) {
	f := listFilter{Status: p.Status, Priority: p.Priority, Tag: p.Tag, Assignee: p.AssigneeID, Limit: p.Limit + 1}
	switch {
	case s.can(ctx, sub, authz.TicketsRead, nil):
	case s.authz.Allowed(ctx, sub.Role, authz.Request{Action: authz.TicketsRead, Resource: authz.ResourceTickets, Own: true}):
		f.Requester = sub.Email
	default:
		return nil, errs.Errorf(errs.ErrForbidden, "role %s may not read tickets", sub.Role)
	}
	if p.Status != "" && !slices.Contains(Statuses, p.Status) {
		return nil, errs.Errorf(errs.ErrInvalidInput, "status filter must be one of %s", strings.Join(Statuses, ", "))
	}
	if p.Priority != "" && !slices.Contains(Priorities, p.Priority) {
		return nil, errs.Errorf(errs.ErrInvalidInput, "priority filter must be one of %s", strings.Join(Priorities, ", "))
	}
	if p.Cursor != "" {
		f.After = &ticketCursor{}
		if err := page.DecodeCursor(p.Cursor, f.After); err != nil {
			return nil, err
		}
	}
	var items []*Ticket
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		var err error
		items, err = listTickets(ctx, tx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, p.Limit, func(last *Ticket) any { return ticketCursor{UpdatedAt: last.UpdatedAt, ID: last.ID} })
	return &pg, nil
}

// UpdateParams is the body of PATCH /tickets/{number}.
type UpdateParams struct {
	Title    *string `json:"title"`
	Status   *string `json:"status"`
	Priority *string `json:"priority"`
	// AssigneeID distinguishes "absent" from null (unassign).
	AssigneeID optionalID `json:"assignee_id"`
	Tags       *[]string  `json:"tags"`
	IfMatch    *int       `json:"-"`
}

// Update applies a partial change, checking every field's permission and the
// state machine before writing anything.
func (s *Service) Update(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, p UpdateParams) (*Ticket, error) {
	var (
		out     *Ticket
		written int
	)
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		t, err := s.load(ctx, tx, sub, number, true)
		if err != nil {
			return err
		}
		if p.IfMatch != nil && *p.IfMatch != t.Version {
			return errs.Errorf(errs.ErrConflict, "ticket %d is at version %d, not %d", t.Number, t.Version, *p.IfMatch)
		}
		ch := newChange(t, sub.MemberID)
		if err := s.applyUpdate(ctx, tx, sub, ch, p); err != nil {
			return err
		}
		out, err = s.commit(ctx, tx, ch)
		written = ch.outboxWritten
		return err
	})
	if err != nil {
		return nil, err
	}
	s.countChange(tn, written)
	return out, nil
}

func (s *Service) applyUpdate(ctx context.Context, tx tenancy.Tx, sub authz.Subject, ch *change, p UpdateParams) error {
	a := &ch.After
	if p.Title != nil || p.Status != nil || p.Priority != nil || p.Tags != nil {
		if err := s.check(ctx, sub, authz.TicketsUpdate, a); err != nil {
			return err
		}
	}
	if p.Title != nil {
		if err := validateTitle(*p.Title); err != nil {
			return err
		}
		a.Title = strings.TrimSpace(*p.Title)
	}
	if p.Priority != nil {
		if err := validatePriority(*p.Priority); err != nil {
			return err
		}
		a.Priority = *p.Priority
	}
	if p.Tags != nil {
		tags, err := normalizeTags(*p.Tags)
		if err != nil {
			return err
		}
		a.Tags = tags
	}
	if p.Status != nil {
		if err := checkTransition(a.Status, *p.Status); err != nil {
			return err
		}
		if isReopen(a.Status, *p.Status) {
			if err := s.check(ctx, sub, authz.TicketsReopen, a); err != nil {
				return err
			}
			ch.Audit = append(ch.Audit, auditEntry{Action: "ticket.reopened", Data: map[string]any{"from": a.Status}})
		}
		a.Status = *p.Status
	}
	if p.AssigneeID.Set {
		if err := s.check(ctx, sub, authz.TicketsAssign, a); err != nil {
			return err
		}
		if p.AssigneeID.ID != nil {
			if err := s.checkAssignee(ctx, tx, *p.AssigneeID.ID); err != nil {
				return err
			}
		}
		a.AssigneeID = p.AssigneeID.ID
	}
	return nil
}

// Delete soft-deletes a ticket (owner/admin), with an audit record.
func (s *Service) Delete(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64) error {
	written := 0
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		t, err := s.load(ctx, tx, sub, number, true)
		if err != nil {
			return err
		}
		if err := s.check(ctx, sub, authz.TicketsDelete, t); err != nil {
			return err
		}
		ch := newChange(t, sub.MemberID)
		now := time.Now()
		ch.After.DeletedAt = &now
		ch.Audit = append(ch.Audit, auditEntry{Action: "ticket.deleted", Data: map[string]any{"title": t.Title}})
		_, err = s.commit(ctx, tx, ch)
		written = ch.outboxWritten
		return err
	})
	if err == nil {
		s.metrics.outboxWritten.Add(float64(written))
	}
	return err
}

// countChange counts a committed change (patch, comment) and its outbox
// rows. Only ever called after the transaction returned: the callback may
// run twice, and a count taken inside it would then count twice.
func (s *Service) countChange(tn *tenancy.Tenant, outboxWritten int) {
	s.metrics.updated.WithLabelValues(tn.Tier).Inc()
	s.metrics.outboxWritten.Add(float64(outboxWritten))
}

// CommentParams is the body of POST /tickets/{number}/comments.
type CommentParams struct {
	Body     string `json:"body"`
	Internal bool   `json:"internal"`
	// AttachmentIDs are files the author uploaded to the ticket before.
	AttachmentIDs []uuid.UUID `json:"attachment_ids"`
}

// AddComment adds a reply or internal note. A requester's reply reopens a
// resolved ticket, and a closed one within the reopen window.
func (s *Service) AddComment(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, p CommentParams) (*Comment, error) {
	if err := validateBody(p.Body, true); err != nil {
		return nil, err
	}
	if len(p.AttachmentIDs) > 0 && s.files == nil {
		return nil, errs.Errorf(errs.ErrInvalid, "attachments are not available")
	}
	var (
		c       *Comment
		written int
	)
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		t, err := s.load(ctx, tx, sub, number, true)
		if err != nil {
			return err
		}
		action := authz.CommentsPublic
		if p.Internal {
			action = authz.CommentsInternal
		}
		if err := s.check(ctx, sub, action, t); err != nil {
			return err
		}
		ch := newChange(t, sub.MemberID)
		if err := s.requesterReopens(ctx, sub, ch, p.Internal); err != nil {
			return err
		}
		if c, err = insertComment(ctx, tx, t.ID, sub.MemberID, p.Body, p.Internal); err != nil {
			return err
		}
		if len(p.AttachmentIDs) > 0 {
			if c.Attachments, err = s.files.Claim(ctx, tx, t.ID, c.ID, sub.MemberID, c.Internal, p.AttachmentIDs); err != nil {
				return err
			}
		}
		ch.Comment = c
		ch.Extra = append(ch.Extra, pendingEvent{Type: EventCommented, Data: map[string]any{"comment_id": c.ID, "internal": c.Internal}})
		_, err = s.commit(ctx, tx, ch)
		written = ch.outboxWritten
		return err
	})
	if err != nil {
		return nil, err
	}
	s.countChange(tn, written)
	return c, nil
}

// requesterReopens moves a resolved or recently closed ticket back to open
// when its requester (a customer) replies; a reply to a ticket closed longer
// than the window is refused, since it belongs in a new ticket.
func (s *Service) requesterReopens(ctx context.Context, sub authz.Subject, ch *change, internal bool) error {
	a := &ch.After
	if internal || !owns(sub, a) || s.can(ctx, sub, authz.TicketsUpdate, a) {
		return nil
	}
	switch a.Status {
	case StatusResolved:
		a.Status = StatusOpen
	case StatusClosed:
		if a.ClosedAt != nil && time.Since(*a.ClosedAt) > s.cfg.ReopenWindow {
			return errs.Errorf(errs.ErrInvalid, "ticket %d was closed more than %s ago; open a new ticket", a.Number, s.cfg.ReopenWindow)
		}
		a.Status = StatusOpen
		ch.Audit = append(ch.Audit, auditEntry{Action: "ticket.reopened", Data: map[string]any{"from": StatusClosed, "by": "requester reply"}})
	}
	return nil
}

// ListComments pages a ticket's comments oldest first; internal notes only for staff.
func (s *Service) ListComments(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, cursor string, limit int) (*page.Page[Comment], error) {
	var after struct {
		At time.Time `json:"a"`
		ID uuid.UUID `json:"i"`
	}
	if err := page.DecodeCursor(cursor, &after); err != nil {
		return nil, err
	}
	var items []Comment
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		t, err := s.load(ctx, tx, sub, number, false)
		if err != nil {
			return err
		}
		items, err = listComments(ctx, tx, t.ID, s.can(ctx, sub, authz.CommentsReadInternal, t), after.ID, after.At, limit+1)
		if err != nil || s.files == nil || len(items) == 0 {
			return err
		}
		ids := make([]uuid.UUID, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		files, err := s.files.ForComments(ctx, tx, ids)
		for i := range items {
			if f, ok := files[items[i].ID]; ok {
				items[i].Attachments = f
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, limit, func(last Comment) any { return map[string]any{"a": last.CreatedAt, "i": last.ID} })
	return &pg, nil
}

// ListEvents pages a ticket's timeline oldest first.
func (s *Service) ListEvents(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64, cursor string, limit int) (*page.Page[Event], error) {
	var after struct {
		ID int64 `json:"i"`
	}
	if err := page.DecodeCursor(cursor, &after); err != nil {
		return nil, err
	}
	var items []Event
	err := s.db.Tx(ctx, tn, func(ctx context.Context, tx tenancy.Tx) error {
		t, err := s.load(ctx, tx, sub, number, false)
		if err != nil {
			return err
		}
		items, err = listEvents(ctx, tx, t.ID, s.can(ctx, sub, authz.CommentsReadInternal, t), after.ID, limit+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	pg := page.New(items, limit, func(last Event) any { return map[string]int64{"i": last.ID} })
	return &pg, nil
}

// Ref locates a ticket the subject may read, for modules that hang things on
// tickets (attachments): its id, and whether the subject requested it. A
// ticket they may not read is errs.ErrNotFound, as for Get.
func (s *Service) Ref(ctx context.Context, sub authz.Subject, tn *tenancy.Tenant, number int64) (uuid.UUID, bool, error) {
	t, err := s.Get(ctx, sub, tn, number)
	if err != nil {
		return uuid.Nil, false, err
	}
	return t.ID, owns(sub, t), nil
}
