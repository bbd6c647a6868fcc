-- +goose Up
-- Dead-lettered messages an operator sent back through their consumer
-- (patchdesk deadletter replay). The dead letters themselves stay in the
-- Kafka topic until its retention; this records which were resolved, so
-- that doctor counts only those still waiting for a human, and replay skips
-- them unless asked again. dead_letter_id is partition-offset in the topic.
CREATE TABLE control.dead_letter_replays (
    dead_letter_id text PRIMARY KEY,
    consumer_group text NOT NULL,
    event_id       text NOT NULL,
    replays        integer NOT NULL DEFAULT 1,
    replayed_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE control.dead_letter_replays;
