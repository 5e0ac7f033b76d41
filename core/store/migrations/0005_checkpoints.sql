-- ocds-live store, version 5: the compiled release is a checkpoint, not rewritten on every release.
-- Applied by `ocds-live db migrate`.
--
-- A long process's compiled release grows with every release (a 500-release process: ~200 KB), and writing
-- it whole on each one made the 500th release cost twice the first. records.compiled now holds the compiled
-- release as of the release with seq `compiled_through`; the process's releases with a greater seq, applied
-- in seq order, bring it up to date (core.store.reader). The writer stores them in that order, and writes a
-- new checkpoint when the releases after the last one reach its size (`tail_bytes`), when a release arrives
-- out of date order, and for every new record (core.store.writer.save_records).
--
-- Existing rows keep compiled_through NULL: their compiled release is current, and no release follows it.

ALTER TABLE records
    ADD COLUMN compiled_through bigint,
    ADD COLUMN tail_bytes integer NOT NULL DEFAULT 0;

-- The writer's upsert proposes a NULL compiled release to keep the stored one, and PostgreSQL checks NOT NULL
-- on the proposed row before it finds the conflict. A new record always gets one.
ALTER TABLE records ALTER COLUMN compiled DROP NOT NULL;
