-- ocds-live store, version 3: what search needs beside the full-text vector. Applied by `ocds-live db migrate`.
--
-- The record's `date` is text as published (RFC 3339, offsets vary, a few are unreadable), so sorting it
-- as text is wrong by hours and a range filter on it is wrong at offsets. `date_at` is the instant (NULL
-- when unreadable; a date without an offset counts as UTC), `year` the year as written. Both are generated
-- from `date`, so every writer fills them without knowing they exist. Adding them rewrites the table once
-- (expect minutes for millions of records).

CREATE FUNCTION ocds_instant(value text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET timezone = 'UTC' SET datestyle = 'ISO, YMD'
AS $$
BEGIN
    IF value IS NULL OR value !~ '^\d{4}-\d{2}-\d{2}([Tt ]|$)' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;  -- "2017-02-30", "2017-01-01T25:00Z": unreadable is NULL, never an error on write
END
$$;

COMMENT ON FUNCTION ocds_instant(text) IS
    'An OCDS date as an instant: NULL when unreadable; no offset means UTC (fixed here, so immutable).';

CREATE FUNCTION ocds_year(value text) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN ocds_instant(value) IS NOT NULL THEN substr(value, 1, 4)::smallint END
$$;

ALTER TABLE records
    ADD COLUMN date_at timestamptz GENERATED ALWAYS AS (ocds_instant(date)) STORED,
    ADD COLUMN year smallint GENERATED ALWAYS AS (ocds_year(date)) STORED;

-- Seek pagination: (key, ocid) row comparisons walk these in either direction.
CREATE INDEX records_date_at_idx ON records (date_at, ocid);
CREATE INDEX records_amount_idx ON records (amount, ocid);
CREATE INDEX records_status_idx ON records (status);
