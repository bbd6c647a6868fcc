-- +goose Up
-- Identity hardening (issue 9).
--
-- 1. One canonical form for email addresses (Go: package modules/address).
--    Ownership used to be decided with Go's strings.EqualFold while the
--    unique index and the list filters used PostgreSQL's lower(); the two fold
--    Unicode differently (ſ/s, the Kelvin sign K/k), so two customers could
--    be "the same" in one place and distinct in the other, and one read the
--    other's tickets. From here on every address is stored canonical and
--    compared with plain equality everywhere; CHECK constraints refuse any
--    write that is not canonical.
--
--    canonical_email() is the SQL twin of address.Canonical (a test checks
--    they agree on random and adversarial inputs): NFKC, trim ASCII
--    whitespace, lowercase A-Z only (translate, no locale), then ASCII
--    dot-atom@hostname of at most 254 bytes (64 before the @). NULL when the
--    address has no canonical form.
-- +goose StatementBegin
CREATE FUNCTION canonical_email(address text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT c FROM (SELECT translate(btrim(normalize(address, NFKC), E' \t\n\x0b\f\r'),
                                    'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS c) AS s
    WHERE c ~ '^[a-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
      AND octet_length(c) <= 254
      AND octet_length(split_part(c, '@', 1)) <= 64
$$;
-- +goose StatementEnd

-- Members. Each address is rewritten to its canonical form. Rows that then
-- collide keep one member per address: the row whose address was already
-- canonical, else one spelt in ASCII (only its case changes: a spelling that
-- needed NFKC, like ſam for sam, is the look-alike), else an active one, else
-- the oldest. The others, and members
-- whose address has no canonical form (non-ASCII after NFKC, or not a plain
-- address), are quarantined: deactivated, their sessions and tokens deleted,
-- their address replaced by <member id>@quarantined.invalid (a reserved
-- domain, RFC 2606), and an audit entry keeps the original address so an
-- admin can act on it. Rows keep their id, so tickets, comments and events
-- that reference them stay intact.
CREATE TEMP TABLE member_email_fix ON COMMIT DROP AS
SELECT id, email AS before, canon,
       first_value(id) OVER w AS winner,
       row_number() OVER w AS rank
FROM (SELECT id, email, active, created_at, canonical_email(email) AS canon FROM members) AS m
WINDOW w AS (PARTITION BY canon ORDER BY email = canon DESC, octet_length(email) = length(email) DESC, active DESC, created_at, id);

DROP INDEX members_email_idx;

INSERT INTO audit_log (action, target, data)
SELECT 'member.email_quarantined', 'member:' || id,
       jsonb_build_object('before', before, 'after', replace(id::text, '-', '') || '@quarantined.invalid',
                          'reason', CASE WHEN canon IS NULL THEN 'the address has no canonical form (ASCII after NFKC)'
                                         ELSE 'same canonical address ' || canon || ' as member ' || winner END)
FROM member_email_fix WHERE canon IS NULL OR rank > 1;

DELETE FROM tokens WHERE member_id IN (SELECT id FROM member_email_fix WHERE canon IS NULL OR rank > 1);

UPDATE members m SET email = replace(m.id::text, '-', '') || '@quarantined.invalid', active = false,
                     version = version + 1, updated_at = now()
FROM member_email_fix f WHERE f.id = m.id AND (f.canon IS NULL OR f.rank > 1);

UPDATE members m SET email = f.canon
FROM member_email_fix f WHERE f.id = m.id AND f.canon IS NOT NULL AND f.rank = 1 AND m.email <> f.canon;

CREATE UNIQUE INDEX members_email_key ON members (email);
ALTER TABLE members ADD CONSTRAINT members_email_canonical CHECK (email IS NOT DISTINCT FROM canonical_email(email));

-- Tickets. A requester address is rewritten to its canonical form; one with
-- none is cleared (no member can ever own it: members' addresses are
-- canonical), with an audit entry keeping it, as the ticket's created event
-- does too.
CREATE TEMP TABLE requester_fix ON COMMIT DROP AS
SELECT id, number, requester_email AS before, canonical_email(requester_email) AS canon
FROM tickets WHERE requester_email IS DISTINCT FROM canonical_email(requester_email);

INSERT INTO audit_log (action, target, data)
SELECT 'ticket.requester_cleared', 'ticket:' || number,
       jsonb_build_object('before', before, 'reason', 'the address has no canonical form (ASCII after NFKC)')
FROM requester_fix WHERE canon IS NULL;

UPDATE tickets t SET requester_email = f.canon FROM requester_fix f WHERE f.id = t.id;

DROP INDEX tickets_requester_idx;
CREATE INDEX tickets_requester_idx ON tickets (requester_email, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
ALTER TABLE tickets ADD CONSTRAINT tickets_requester_canonical
    CHECK (requester_email IS NOT DISTINCT FROM canonical_email(requester_email));

-- The read models hold copies of the requester: bring them in line now, so
-- that no stale spelling can match a filter before the next event or reindex.
UPDATE search_docs d SET requester_email = t.requester_email
FROM tickets t WHERE t.id = d.ticket_id AND d.requester_email IS DISTINCT FROM t.requester_email;
UPDATE report_tickets r SET requester_email = t.requester_email
FROM tickets t WHERE t.id = r.ticket_id AND r.requester_email IS DISTINCT FROM t.requester_email;

-- 2. Sessions and API tokens: last use, written at most once a minute per
-- credential (sessions slide their 14-day idle expiry then), and an index
-- for the owner's and admins' listings, newest first.
ALTER TABLE tokens ADD COLUMN last_used_at timestamptz;
CREATE INDEX tokens_kind_created_idx ON tokens (kind, created_at DESC, id DESC);

-- +goose Down
DROP INDEX tokens_kind_created_idx;
ALTER TABLE tokens DROP COLUMN last_used_at;
ALTER TABLE tickets DROP CONSTRAINT tickets_requester_canonical;
DROP INDEX tickets_requester_idx;
CREATE INDEX tickets_requester_idx ON tickets (lower(requester_email), updated_at DESC, id DESC) WHERE deleted_at IS NULL;
ALTER TABLE members DROP CONSTRAINT members_email_canonical;
DROP INDEX members_email_key;
CREATE UNIQUE INDEX members_email_idx ON members (lower(email));
DROP FUNCTION canonical_email(text);
-- Canonicalised addresses and quarantined members stay as they are: the
-- original spellings are in the audit log.
