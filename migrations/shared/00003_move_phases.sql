-- +goose Up
-- How long each step of a tier move took, and the parts of its write freeze,
-- in milliseconds by name: `patchdesk tenants moves` shows them, for moves in
-- progress as well as past ones.
ALTER TABLE control.tenant_moves ADD COLUMN phases jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE control.tenant_moves DROP COLUMN phases;
