-- Store generations: a store rebuilt from ocds.releases (`ocds-live replay --switch`) replaces the live one
-- in one transaction (a schema rename). Its change log is a new sequence of cursors: the cursors of
-- generation g are above `base`, (g - 1) * 10^12, so a cursor of an older generation is recognised as such
-- and answered with an explicit error (HTTP 410, websocket close 4410), never read in the new log.
CREATE TABLE store_generation (
    id              integer     PRIMARY KEY CHECK (id = 1),
    generation      integer     NOT NULL,   -- 1 for a store built in place
    base            bigint      NOT NULL,   -- every cursor and seq of this generation is above it
    previous_schema text,                   -- where the store it replaced is kept (until an operator drops it)
    previous_head   bigint,                 -- the last cursor of that store's change log
    resume_after    bigint,                 -- the cursor of this log that corresponds to previous_head
    switched_at     timestamptz
);
INSERT INTO store_generation (id, generation, base) VALUES (1, 1, 0);

-- While a rebuild catches up, its worker applies only messages below these offsets (one row per partition
-- of the releases topic), so that at the switch it has applied exactly what the live store has. Messages
-- above wait for the ceiling to rise; once it is `final` (the live workers are held at the switch) they are
-- left to the live workers. Empty in a live store.
CREATE TABLE replay_ceiling (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    final       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (topic, partition)
);
