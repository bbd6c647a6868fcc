-- +goose Up
-- Events a consumer group has already applied to this tenant: the
-- idempotency key of at-least-once delivery.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE notifications (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES members (id),
    event_id      uuid NOT NULL,
    type          text NOT NULL,
    ticket_number bigint,
    title         text NOT NULL,
    summary       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz,
    UNIQUE (member_id, event_id)
);
CREATE INDEX notifications_member_idx ON notifications (member_id, created_at DESC, id DESC);

CREATE TABLE webhooks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url        text NOT NULL CHECK (length(url) <= 2000),
    events     text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 50),
    secret     text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_by uuid REFERENCES members (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (channel, target, event): every email and webhook attempt
-- series, visible to admins and re-sendable.
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          text NOT NULL,
    webhook_id      uuid REFERENCES webhooks (id) ON DELETE SET NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    round           integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (channel, target, event_id)
);
CREATE INDEX deliveries_status_idx ON deliveries (status, created_at DESC, id DESC);
CREATE INDEX deliveries_created_idx ON deliveries (created_at DESC, id DESC);

-- +goose Down
DROP TABLE deliveries;
DROP TABLE webhooks;
DROP TABLE notifications;
DROP TABLE processed_events;
