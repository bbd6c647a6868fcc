-- +goose Up
-- Databases that hold tenant schemas. dsn_ref never holds a password: it is
-- either 'control' (the control database itself) or 'env:VAR' (a DSN read
-- from the environment of every PatchDesk process).
CREATE TABLE control.databases (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('shared', 'dedicated')),
    dsn_ref    text NOT NULL CHECK (dsn_ref = 'control' OR dsn_ref LIKE 'env:%'),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO control.databases (id, kind, dsn_ref) VALUES ('main', 'shared', 'control');

CREATE TABLE control.tenants (
    id             uuid PRIMARY KEY,
    slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    name           text NOT NULL,
    tier           text NOT NULL CHECK (tier IN ('shared', 'dedicated')),
    status         text NOT NULL CHECK (status IN ('provisioning', 'active', 'suspended', 'failed')),
    database_id    text NOT NULL REFERENCES control.databases (id),
    schema_name    text NOT NULL,
    role_name      text NOT NULL,
    schema_version bigint NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenants_database_idx ON control.tenants (database_id);

-- Operator actions on tenants (provision, suspend, move, delete); kept after a
-- tenant is deleted, so tenant_id has no foreign key.
CREATE TABLE control.tenant_audit (
    id         bigserial PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    slug       text NOT NULL,
    action     text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenant_audit_tenant_idx ON control.tenant_audit (tenant_id, id);

-- +goose Down
DROP TABLE control.tenant_audit;
DROP TABLE control.tenants;
DROP TABLE control.databases;
