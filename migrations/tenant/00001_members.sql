-- +goose Up
-- Text + CHECK instead of enums: enum OIDs differ per schema and break pgx's
-- cached statement descriptions.
CREATE TABLE members (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'agent', 'light_agent', 'viewer', 'customer')),
    active        boolean NOT NULL DEFAULT true,
    password_hash text,
    version       integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX members_email_idx ON members (lower(email));
CREATE INDEX members_owner_idx ON members (id) WHERE role = 'owner' AND active;

-- Session and API tokens, stored only as SHA-256 hashes of their secret part.
CREATE TABLE tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id    uuid NOT NULL REFERENCES members (id),
    kind         text NOT NULL CHECK (kind IN ('session', 'api')),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz
);

CREATE INDEX tokens_member_idx ON tokens (member_id);

-- +goose Down
DROP TABLE tokens;
DROP TABLE members;
