-- ocds-live store, version 2: what the Atom feeds need to page per buyer and per supplier.
--
-- A change names one buyer and any number of suppliers, so an expression index on the event cannot
-- serve "the changes of supplier X in cursor order" (a GIN index could find them, but unordered and
-- lossy: every page would fetch and recheck every matching event). change_keys holds one narrow row
-- per (field, value, cursor), kept by statement-level triggers on changes, so a feed page is a short
-- range scan of the primary key. It is derived data: the triggers follow inserts, deletes and
-- truncates of changes, and the backfill below builds it for rows already there.
--
-- Values longer than 200 characters are not indexed: filters refuse them (core.filters), and a
-- btree entry has a size limit that must never make a writer's transaction fail.

CREATE TABLE change_keys (
    field   text   NOT NULL,                            -- 'buyer' or 'supplier'
    value   text   NOT NULL,                            -- the organization id, as in the event summary
    cursor  bigint NOT NULL,
    PRIMARY KEY (field, value, cursor)
);

-- The (field, value) keys of one change event; never raises on odd JSON.
CREATE FUNCTION change_keys_of(event jsonb) RETURNS TABLE (field text, value text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'buyer', event #>> '{summary,buyer,id}'
     WHERE jsonb_typeof(event #> '{summary,buyer,id}') = 'string'
       AND length(event #>> '{summary,buyer,id}') <= 200
    UNION
    SELECT 'supplier', s.item ->> 'id'
      FROM jsonb_array_elements(CASE WHEN jsonb_typeof(event #> '{summary,suppliers}') = 'array'
                                     THEN event #> '{summary,suppliers}' ELSE '[]'::jsonb END) AS s(item)
     WHERE jsonb_typeof(s.item) = 'object'
       AND jsonb_typeof(s.item -> 'id') = 'string'
       AND length(s.item ->> 'id') <= 200
$$;

CREATE FUNCTION change_keys_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_keys (field, value, cursor)
    SELECT k.field, k.value, n.cursor FROM new_changes n, change_keys_of(n.event) AS k
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION change_keys_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM change_keys k USING old_changes o WHERE k.cursor = o.cursor;
    RETURN NULL;
END $$;

CREATE FUNCTION change_keys_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE change_keys;
    RETURN NULL;
END $$;

CREATE TRIGGER changes_keys_insert AFTER INSERT ON changes
    REFERENCING NEW TABLE AS new_changes FOR EACH STATEMENT EXECUTE FUNCTION change_keys_insert();
CREATE TRIGGER changes_keys_delete AFTER DELETE ON changes
    REFERENCING OLD TABLE AS old_changes FOR EACH STATEMENT EXECUTE FUNCTION change_keys_delete();
CREATE TRIGGER changes_keys_truncate AFTER TRUNCATE ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION change_keys_truncate();

-- Changes are append-only (no trigger follows an UPDATE of an event); backfill what is there.
INSERT INTO change_keys (field, value, cursor)
SELECT k.field, k.value, c.cursor FROM changes c, change_keys_of(c.event) AS k
ON CONFLICT DO NOTHING;
