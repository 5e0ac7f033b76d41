-- ocds-live store, version 7: infrastructure projects (OC4IDS 0.9.4) built from the contracting processes.
-- Applied by `ocds-live db migrate`. See docs/projects.md and core/projects.py.
--
-- project_members says which project each process belongs to now (its compiled release's
-- planning.project.id or planning.budget.projectID, scoped by publisher), with what a rebuild needs of it:
-- its current compiled release and its releases' ids, dates and tags. A rebuild of NAICM (292 processes)
-- reads them from here instead of bringing 292 records' checkpoints up to date (a third of a rebuild's
-- time was that); the price is the member's compiled release written again when it changes. projects holds each project's
-- OC4IDS record as last built (`data`, text like records.compiled: nothing queries inside it), the
-- project-level fields operators and publishers supplied (`supplied`), and what the list, search and pages
-- need (`overview`, title, public authority, status). `seq` comes from feed_counter.last_record in commit
-- order, like records.seq, so seek paging by it never skips a project. A project's changes are
-- `project.updated` events on the same change log (changes.ocid = the project id), and its own and its
-- processes' changes are indexed in change_keys under field 'project'.

CREATE TABLE projects (
    id          text        PRIMARY KEY,              -- the OC4IDS project id: {project_prefix}-{local id}
    publisher   text        NOT NULL,
    local_id    text        NOT NULL,                 -- the id the releases give
    data        text        NOT NULL,                 -- the OC4IDS project, canonical JSON
    digest      text        NOT NULL,                 -- sha256 of data
    supplied    jsonb       NOT NULL DEFAULT '{}',    -- project-level fields supplied (win over the conversion)
    supplied_by text,                                 -- 'operator' or the publisher's name
    overview    jsonb       NOT NULL DEFAULT '{}',    -- budget, contracted, paid, counts (core.projects.figures)
    title       text,
    authority   text,                                 -- the public authority's name
    status      text,
    members     integer     NOT NULL DEFAULT 0,
    search      text        NOT NULL DEFAULT '',      -- title, public authority, buyers, id: lower case, no accents
    seq         bigint      NOT NULL UNIQUE,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_publisher_idx ON projects (publisher, local_id);

CREATE TABLE project_members (
    ocid        text PRIMARY KEY,
    project_id  text NOT NULL,
    publisher   text NOT NULL,
    compiled    text NOT NULL,   -- the process's current compiled release (JSON), written with its record
    releases    text NOT NULL    -- its releases' [id, date, tags] (JSON): the project's linked releases
);
ALTER TABLE project_members ALTER COLUMN compiled SET STORAGE EXTERNAL;
CREATE INDEX project_members_project_idx ON project_members (project_id, ocid);
