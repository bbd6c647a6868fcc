-- +goose Up
-- Search documents are bounded and their tsvectors computed once per burst
-- of changes, off the consumer's path (modules/search):
-- * doc_public and doc_all stop being generated columns, which PostgreSQL
--   recomputes on every UPDATE of the row;
-- * dirty_since marks a document whose text changed after it was indexed:
--   the search consumer stores the text and marks it; a refresh job computes
--   the vectors from a snapshot (holding no lock meanwhile), writes them, and
--   clears the mark if the text is still the one it read (text_rev);
-- * a trigger keeps the rest consistent: it counts text changes, computes
--   the vectors of a row written unmarked (new tickets, reindex, direct
--   inserts) and leaves alone vectors a refresh job wrote.
ALTER TABLE search_docs ALTER COLUMN doc_public DROP EXPRESSION;
ALTER TABLE search_docs ALTER COLUMN doc_all DROP EXPRESSION;
ALTER TABLE search_docs ADD COLUMN dirty_since timestamptz,
    ADD COLUMN text_rev integer NOT NULL DEFAULT 0;

-- search_doc_vectors computes a document's vectors: the expressions of the
-- former generated columns, with the shared parts computed once.
-- +goose StatementBegin
CREATE FUNCTION search_doc_vectors(title text, tags_text text, body text, public_text text, internal_text text,
        requester_email text, OUT doc_public tsvector, OUT doc_all tsvector) LANGUAGE plpgsql STABLE AS $$
DECLARE
    head tsvector := setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', tags_text), 'B');
    text_c tsvector := to_tsvector('english', body || ' ' || public_text);
    tail tsvector := setweight(to_tsvector('simple', coalesce(requester_email, '')), 'D');
BEGIN
    doc_public := head || setweight(text_c, 'C') || tail;
    doc_all := head || setweight(text_c || to_tsvector('english', internal_text), 'C') || tail;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION search_docs_vectors() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed boolean := TG_OP = 'INSERT' OR NEW.title <> OLD.title OR NEW.tags_text <> OLD.tags_text
        OR NEW.body <> OLD.body OR NEW.public_text <> OLD.public_text OR NEW.internal_text <> OLD.internal_text
        OR NEW.requester_email IS DISTINCT FROM OLD.requester_email;
BEGIN
    IF TG_OP = 'UPDATE' AND NOT changed AND NEW.doc_all IS DISTINCT FROM OLD.doc_all THEN
        RETURN NEW; -- vectors written by a refresh job
    END IF;
    IF TG_OP = 'UPDATE' AND changed THEN
        NEW.text_rev := OLD.text_rev + 1;
    END IF;
    IF TG_OP = 'UPDATE' AND NOT changed AND OLD.dirty_since IS NULL THEN
        NEW.dirty_since := NULL; -- no indexed text changed: nothing to defer
        RETURN NEW;
    END IF;
    IF NEW.dirty_since IS NOT NULL THEN
        RETURN NEW; -- deferred to the refresh job
    END IF;
    SELECT v.doc_public, v.doc_all INTO NEW.doc_public, NEW.doc_all
    FROM search_doc_vectors(NEW.title, NEW.tags_text, NEW.body, NEW.public_text, NEW.internal_text, NEW.requester_email) v;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER search_docs_vectors BEFORE INSERT OR UPDATE ON search_docs
    FOR EACH ROW EXECUTE FUNCTION search_docs_vectors();

-- Documents indexed before the bounds keep their whole text: trim them once
-- (the trigger recomputes their vectors).
UPDATE search_docs SET body = left(body, 8192),
    public_text = right(public_text, 16384),
    internal_text = right(internal_text, 16384)
WHERE length(body) > 8192 OR length(public_text) > 16384 OR length(internal_text) > 16384;

-- +goose Down
DROP TRIGGER search_docs_vectors ON search_docs;
DROP FUNCTION search_docs_vectors();
DROP FUNCTION search_doc_vectors(text, text, text, text, text, text);
ALTER TABLE search_docs DROP COLUMN dirty_since, DROP COLUMN text_rev;
ALTER TABLE search_docs DROP COLUMN doc_public, DROP COLUMN doc_all;
ALTER TABLE search_docs ADD COLUMN doc_public tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', tags_text), 'B') ||
        setweight(to_tsvector('english', body || ' ' || public_text), 'C') ||
        setweight(to_tsvector('simple', coalesce(requester_email, '')), 'D')) STORED,
    ADD COLUMN doc_all tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', tags_text), 'B') ||
        setweight(to_tsvector('english', body || ' ' || public_text || ' ' || internal_text), 'C') ||
        setweight(to_tsvector('simple', coalesce(requester_email, '')), 'D')) STORED;
CREATE INDEX search_docs_public_idx ON search_docs USING gin (doc_public);
CREATE INDEX search_docs_all_idx ON search_docs USING gin (doc_all);
