-- ocds-live store, version 4: a cheaper write path for the stream processor (measured on bench data:
-- ~4.4 KB change events and compiled releases). Applied by `ocds-live db migrate`.
--
-- * changes.event and records.compiled become text: nothing queries inside them with jsonb operators, and
--   parsing them into jsonb on every write cost more than the rest of the row (change rows: 198 -> 106 µs).
--   Readers get the JSON as written (`event::text`, `compiled::text` still work).
-- * change_keys is filled by the writer (core.store.writer.append_changes), which has the summary at hand,
--   instead of an insert trigger that parsed every event; the delete and truncate triggers stay.
-- * The large JSON columns are stored uncompressed out of line (STORAGE EXTERNAL): pglz compression was a
--   third of the remaining cost of a change row (106 -> 69 µs), at the price of more disk.

DROP TRIGGER changes_keys_insert ON changes;
DROP FUNCTION change_keys_insert();

ALTER TABLE changes ALTER COLUMN event TYPE text USING event::text;
ALTER TABLE changes ALTER COLUMN event SET STORAGE EXTERNAL;
ALTER TABLE records ALTER COLUMN compiled TYPE text USING compiled::text;
ALTER TABLE records ALTER COLUMN compiled SET STORAGE EXTERNAL;
ALTER TABLE releases ALTER COLUMN data SET STORAGE EXTERNAL;
