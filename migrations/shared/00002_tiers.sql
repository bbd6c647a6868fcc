-- +goose Up
-- DSNs of dedicated databases are either an environment reference (env:VAR)
-- or encrypted with PATCHDESK_SECRET_KEY (enc:<base64 AES-GCM>), never plain.
ALTER TABLE control.databases DROP CONSTRAINT databases_dsn_ref_check;
ALTER TABLE control.databases ADD CONSTRAINT databases_dsn_ref_check
    CHECK (dsn_ref = 'control' OR dsn_ref LIKE 'env:%' OR dsn_ref LIKE 'enc:%');

-- One row per tier move; every step is recorded so that a move interrupted
-- at any point can be resumed or aborted.
CREATE TABLE control.tenant_moves (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    from_database   text NOT NULL REFERENCES control.databases (id),
    to_database     text NOT NULL REFERENCES control.databases (id),
    state           text NOT NULL CHECK (state IN ('created', 'target_ready', 'replicating', 'synced', 'switched',
                                                   'cleaned', 'done', 'aborted')),
    freeze_ms       integer,
    error           text,
    retain_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one unfinished move per tenant.
CREATE UNIQUE INDEX tenant_moves_active_idx ON control.tenant_moves (tenant_id) WHERE state NOT IN ('done', 'aborted');

-- Retired copies left behind by moves, dropped once their retention passes.
CREATE TABLE control.retired_copies (
    id           bigserial PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    database_id  text NOT NULL REFERENCES control.databases (id),
    schema_name  text NOT NULL,
    drop_after   timestamptz NOT NULL,
    dropped_at   timestamptz
);

-- +goose Down
DROP TABLE control.retired_copies;
DROP TABLE control.tenant_moves;
