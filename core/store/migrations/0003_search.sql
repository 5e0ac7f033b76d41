-- ocds-live store, version 3: what search needs beside the full-text vector. Applied by `ocds-live db migrate`.
--
-- The record's `date` is text as published (RFC 3339, offsets vary, a few are unreadable), so sorting it
-- as text is wrong by hours and a range filter on it is wrong at offsets. `date_at` is the instant (NULL
-- when unreadable; a date without an offset counts as UTC), `year` the year as written. The writer fills
-- both (core.store.writer.instant): generated columns calling a PL/pgSQL parser with an exception block
-- cost a subtransaction per row on the stream's hottest write.

ALTER TABLE records
    ADD COLUMN date_at timestamptz,
    ADD COLUMN year smallint;

-- Seek pagination: (key, ocid) row comparisons walk these in either direction.
CREATE INDEX records_date_at_idx ON records (date_at, ocid);
CREATE INDEX records_amount_idx ON records (amount, ocid);
CREATE INDEX records_status_idx ON records (status);
