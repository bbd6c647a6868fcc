-- +goose Up
-- The search consumer now indexes at most the first 8,192 characters of a
-- ticket's description and the newest 16,384 characters of its public and of
-- its internal comments (modules/search). Documents indexed before keep their
-- whole text, which every later write would recompute; trim them once.
UPDATE search_docs SET body = left(body, 8192),
    public_text = right(public_text, 16384),
    internal_text = right(internal_text, 16384)
WHERE length(body) > 8192 OR length(public_text) > 16384 OR length(internal_text) > 16384;

-- +goose Down
-- Trimmed text cannot be restored here; `patchdesk search reindex` rebuilds it.
SELECT 1;
