-- ocds-live store, version 14: project rebuilds off the stream's hot path (see docs/projects.md).
-- Applied by `ocds-live db migrate`.
--
-- The stream processor no longer rebuilds a project inside the batch that touched it: it updates
-- project_members and marks the project here, in the same transaction, and a project builder (one at a time,
-- in a worker) rebuilds each marked project once per round, however many batches marked it. `version` is the
-- feed_counter.last_record of the marking transaction (commit-ordered: it is taken under feed_counter's lock),
-- and projects.built_version the version a project was last built at: a build from an older snapshot never
-- overwrites a newer one, and a mark is cleared only when a build at or after its version is stored.
-- release_id, date and publisher name the newest release among the members' new ones (the event's cause);
-- owner and local_id the project's publisher and the id its releases give (for a project seen first).

CREATE TABLE project_dirty (
    project_id  text   PRIMARY KEY,
    version     bigint NOT NULL,
    release_id  text   NOT NULL DEFAULT '',
    date        text   NOT NULL DEFAULT '',
    publisher   text,
    owner       text,
    local_id    text
);

ALTER TABLE projects ADD COLUMN built_version bigint NOT NULL DEFAULT 0;

-- A member's row says only which project it belongs to: the builder reads the members' compiled releases from
-- their records (in its snapshot), so the stream no longer writes each member's compiled release twice.
ALTER TABLE project_members DROP COLUMN compiled, DROP COLUMN releases;
