-- +goose Up
-- Per-database infrastructure, in schema infra of every database that holds
-- tenant schemas. Tenant roles belong to patchdesk_tenant, which may INSERT
-- outbox rows (inside the ticket transaction) but never read them: one
-- tenant cannot see another's events.
-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE patchdesk_tenant NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- roles are cluster-wide: another database created it
END;
$$;
-- +goose StatementEnd

CREATE TABLE infra.outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    tenant_id    uuid NOT NULL,
    ticket_id    uuid,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON infra.outbox (id) WHERE published_at IS NULL;

GRANT USAGE ON SCHEMA infra TO patchdesk_tenant;
GRANT INSERT ON infra.outbox TO patchdesk_tenant;

-- +goose Down
DROP TABLE infra.outbox;
