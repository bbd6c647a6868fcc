package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/patchdesk/patchdesk/modules/attachments"
	"github.com/patchdesk/patchdesk/modules/tickets"
	"github.com/patchdesk/patchdesk/tenancy"
)

// commentFiles lets tickets claim and list attachments without importing
// the attachments module (business modules never import each other).
type commentFiles struct{ svc *attachments.Service }

// Claim implements tickets.Attachments.
func (c commentFiles) Claim(ctx context.Context, tx tenancy.Tx, ticketID, commentID, author uuid.UUID, internal bool, ids []uuid.UUID) ([]tickets.Attachment, error) {
	got, err := c.svc.Claim(ctx, tx, ticketID, commentID, author, internal, ids)
	return convert(got), err
}

// ForComments implements tickets.Attachments.
func (c commentFiles) ForComments(ctx context.Context, tx tenancy.Tx, commentIDs []uuid.UUID) (map[uuid.UUID][]tickets.Attachment, error) {
	got, err := c.svc.ForComments(ctx, tx, commentIDs)
	out := make(map[uuid.UUID][]tickets.Attachment, len(got))
	for id, files := range got {
		out[id] = convert(files)
	}
	return out, err
}

func convert(files []*attachments.Attachment) []tickets.Attachment {
	out := make([]tickets.Attachment, len(files))
	for i, a := range files {
		out[i] = tickets.Attachment{ID: a.ID, Name: a.Name, Size: a.Size, ContentType: a.ContentType, SHA256: a.SHA256}
	}
	return out
}
