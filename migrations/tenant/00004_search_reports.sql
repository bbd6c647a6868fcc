-- +goose Up
-- Search read model, fed by the search consumer. Title weighs most (A), then
-- tags (B), then body and comments (C), then the requester (D). Customers
-- search doc_public; staff search doc_all, which adds internal notes.
CREATE TABLE search_docs (
    ticket_id       uuid PRIMARY KEY,
    number          bigint NOT NULL,
    title           text NOT NULL,
    status          text NOT NULL,
    requester_email text,
    tags_text       text NOT NULL DEFAULT '',
    body            text NOT NULL DEFAULT '',
    public_text     text NOT NULL DEFAULT '',
    internal_text   text NOT NULL DEFAULT '',
    ticket_version  integer NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    doc_title  tsvector GENERATED ALWAYS AS (to_tsvector('english', title)) STORED,
    doc_public tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', tags_text), 'B') ||
        setweight(to_tsvector('english', body || ' ' || public_text), 'C') ||
        setweight(to_tsvector('simple', coalesce(requester_email, '')), 'D')) STORED,
    doc_all tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', tags_text), 'B') ||
        setweight(to_tsvector('english', body || ' ' || public_text || ' ' || internal_text), 'C') ||
        setweight(to_tsvector('simple', coalesce(requester_email, '')), 'D')) STORED
);
CREATE INDEX search_docs_public_idx ON search_docs USING gin (doc_public);
CREATE INDEX search_docs_all_idx ON search_docs USING gin (doc_all);
CREATE INDEX search_docs_requester_idx ON search_docs (lower(requester_email));
-- Broad queries rank only the most recent matches, found newest-first.
CREATE INDEX search_docs_number_idx ON search_docs (number DESC);

-- Reports read model, fed by the reports consumer; the summary endpoint reads
-- only these tables, never tickets.
CREATE TABLE report_tickets (
    ticket_id         uuid PRIMARY KEY,
    number            bigint NOT NULL,
    title             text NOT NULL,
    requester_email   text,
    priority          text NOT NULL,
    status            text NOT NULL,
    assignee_id       uuid,
    created_at        timestamptz NOT NULL,
    first_response_at timestamptz,
    resolved_at       timestamptz,
    deleted           boolean NOT NULL DEFAULT false
);
CREATE INDEX report_tickets_created_idx ON report_tickets (created_at) INCLUDE (first_response_at, resolved_at) WHERE NOT deleted;
CREATE INDEX report_tickets_load_idx ON report_tickets (assignee_id)
    WHERE NOT deleted AND status IN ('open', 'in_progress', 'pending');
CREATE INDEX report_tickets_number_idx ON report_tickets (number);

CREATE TABLE report_daily (
    day      date PRIMARY KEY,
    created  integer NOT NULL DEFAULT 0,
    resolved integer NOT NULL DEFAULT 0
);

CREATE TABLE report_backlog (
    status text PRIMARY KEY,
    count  integer NOT NULL DEFAULT 0
);

CREATE TABLE report_exports (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_by uuid REFERENCES members (id),
    row_count    integer,
    csv          text,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

-- +goose Down
DROP TABLE report_exports;
DROP TABLE report_backlog;
DROP TABLE report_daily;
DROP TABLE report_tickets;
DROP TABLE search_docs;
