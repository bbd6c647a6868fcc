-- +goose Up
-- Gap-free per-tenant ticket numbers: the counter row is locked by each
-- create and rolls back with it, unlike a sequence.
CREATE TABLE ticket_counter (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_number bigint NOT NULL DEFAULT 0
);
INSERT INTO ticket_counter DEFAULT VALUES;

CREATE TABLE tickets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number          bigint NOT NULL UNIQUE,
    title           text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body            text NOT NULL DEFAULT '' CHECK (octet_length(body) <= 65536),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'pending', 'resolved', 'closed')),
    priority        text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_id     uuid REFERENCES members (id),
    requester_email text CHECK (requester_email IS NULL OR length(requester_email) <= 254),
    tags            text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    version         integer NOT NULL DEFAULT 1,
    created_by      uuid REFERENCES members (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    closed_at       timestamptz,
    deleted_at      timestamptz
);

-- List endpoints walk (updated_at DESC, id DESC) keysets, optionally filtered.
CREATE INDEX tickets_updated_idx ON tickets (updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tickets_status_idx ON tickets (status, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tickets_priority_idx ON tickets (priority, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tickets_requester_idx ON tickets (lower(requester_email), updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tickets_tags_idx ON tickets USING gin (tags) WHERE deleted_at IS NULL;

CREATE TABLE comments (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id  uuid NOT NULL REFERENCES tickets (id),
    author_id  uuid NOT NULL REFERENCES members (id),
    body       text NOT NULL CHECK (octet_length(body) BETWEEN 1 AND 65536),
    internal   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_ticket_idx ON comments (ticket_id, created_at, id);

-- The timeline: append-only.
CREATE TABLE ticket_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    ticket_id  uuid NOT NULL REFERENCES tickets (id),
    actor_id   uuid REFERENCES members (id),
    type       text NOT NULL CHECK (type IN ('created', 'status_changed', 'assigned', 'priority_changed', 'commented',
                                            'tags_changed', 'title_changed', 'deleted')),
    data       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_events_ticket_idx ON ticket_events (ticket_id, id);

-- Privileged actions: append-only.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id   uuid REFERENCES members (id),
    action     text NOT NULL,
    target     text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);

-- +goose StatementBegin
CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

-- Statement-level, so even a statement that matches no row is refused.
CREATE TRIGGER ticket_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- +goose Down
DROP TABLE audit_log;
DROP TABLE ticket_events;
DROP FUNCTION forbid_change();
DROP TABLE comments;
DROP TABLE tickets;
DROP TABLE ticket_counter;
