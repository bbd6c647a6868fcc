-- +goose Up
-- Idempotency keys (issue 20, modules/idempotency): one row per caller and
-- Idempotency-Key of a POST that wrote something. The row is inserted by the
-- request's first writing transaction, so it exists exactly when the effect
-- committed; the response is added right after. The key itself is not
-- stored, only its SHA-256 (key_hash), and the response is sealed with a key
-- derived from the Idempotency-Key, so a reader of this table cannot replay
-- or read a response that holds a secret (a new API token, a webhook secret).
-- Rows older than 24 hours are deleted by a periodic job.
CREATE TABLE idempotency_keys (
    member_id    uuid NOT NULL,
    key_hash     bytea NOT NULL CHECK (length(key_hash) = 32),
    request_hash bytea NOT NULL CHECK (length(request_hash) = 32),
    -- owner is the request that bound the key: a concurrent duplicate that
    -- finds another owner rolls its own transaction back.
    owner        uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- status and response are NULL until the first response is recorded.
    status       integer CHECK (status BETWEEN 100 AND 599),
    response     bytea,
    PRIMARY KEY (member_id, key_hash)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
