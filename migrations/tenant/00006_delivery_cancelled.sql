-- +goose Up
-- A delivery whose webhook was deactivated or deleted after it was scheduled
-- is not sent: it ends 'cancelled' (issue 9.10).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'cancelled'));

-- +goose Down
UPDATE deliveries SET status = 'dead' WHERE status = 'cancelled';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'dead'));
