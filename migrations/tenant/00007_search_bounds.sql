-- +goose Up
-- Search documents are bounded and their tsvectors computed once per burst
-- of changes (modules/search):
-- * doc_public and doc_all stop being generated columns, which PostgreSQL
--   recomputes on every UPDATE of the row; a trigger computes them instead,
--   only when indexed text changed and the row is not marked dirty;
-- * dirty_since marks a document whose text changed after it was indexed:
--   the search consumer stores the text and marks it, a refresh job clears
--   the mark, which makes the trigger compute the vectors once for every
--   change made meanwhile.
ALTER TABLE search_docs ALTER COLUMN doc_public DROP EXPRESSION;
ALTER TABLE search_docs ALTER COLUMN doc_all DROP EXPRESSION;
ALTER TABLE search_docs ADD COLUMN dirty_since timestamptz;

-- +goose StatementBegin
CREATE FUNCTION search_docs_vectors() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head tsvector;
    text_c tsvector;
    tail tsvector;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.dirty_since IS NULL
        AND NEW.title = OLD.title AND NEW.tags_text = OLD.tags_text AND NEW.body = OLD.body
        AND NEW.public_text = OLD.public_text AND NEW.internal_text = OLD.internal_text
        AND NEW.requester_email IS NOT DISTINCT FROM OLD.requester_email THEN
        NEW.dirty_since := NULL; -- no indexed text changed: nothing to defer
        RETURN NEW;
    END IF;
    IF NEW.dirty_since IS NOT NULL THEN
        RETURN NEW; -- deferred to the refresh job
    END IF;
    -- The expressions of the former generated columns, with the shared
    -- parts computed once.
    head := setweight(to_tsvector('english', NEW.title), 'A') || setweight(to_tsvector('english', NEW.tags_text), 'B');
    text_c := to_tsvector('english', NEW.body || ' ' || NEW.public_text);
    tail := setweight(to_tsvector('simple', coalesce(NEW.requester_email, '')), 'D');
    NEW.doc_public := head || setweight(text_c, 'C') || tail;
    NEW.doc_all := head || setweight(text_c || to_tsvector('english', NEW.internal_text), 'C') || tail;
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
ALTER TABLE search_docs DROP COLUMN dirty_since;
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
