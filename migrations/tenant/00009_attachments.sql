-- +goose Up
-- Attachments (issue 11, modules/attachments): the bytes live in object
-- storage under tenants/<tenant-id>/attachments/<id>; only metadata and what
-- permissions need are kept here, so files never swell the database or its
-- backups. A row exists only for a blob that was stored completely.
CREATE TABLE attachments (
    id           uuid PRIMARY KEY,
    ticket_id    uuid NOT NULL REFERENCES tickets (id),
    -- comment_id is NULL until a comment (or the ticket's creation) claims
    -- the attachment; internal then copies the comment's visibility.
    comment_id   uuid REFERENCES comments (id),
    internal     boolean NOT NULL DEFAULT false,
    uploader_id  uuid NOT NULL REFERENCES members (id),
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    size         bigint NOT NULL CHECK (size > 0),
    content_type text NOT NULL CHECK (char_length(content_type) BETWEEN 1 AND 255),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    status       text NOT NULL DEFAULT 'available' CHECK (status IN ('pending_scan', 'available', 'infected')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_ticket_idx ON attachments (ticket_id, created_at, id);
CREATE INDEX attachments_comment_idx ON attachments (comment_id) WHERE comment_id IS NOT NULL;

-- +goose Down
DROP TABLE attachments;
