-- ocds-live store, version 1. Applied by `ocds-live db migrate`, never by hand.

-- Every accepted release, once per (ocid, release id): the event log's image in the store.
CREATE TABLE releases (
    ocid             text        NOT NULL,
    release_id       text        NOT NULL,
    date             text        NOT NULL,             -- the release's own date, as published
    tags             text[]      NOT NULL DEFAULT '{}',
    publisher        text,
    digest           text        NOT NULL,             -- sha256 of the canonical JSON: same id, other content?
    data             text        NOT NULL,             -- the release's JSON as received (text: PostgreSQL never parses it)
    findings         jsonb       NOT NULL DEFAULT '[]', -- quality warnings kept under the lenient policy
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    seq              bigint      NOT NULL UNIQUE,      -- commit order (from feed_counter), for seek paging
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ocid, release_id)
);

-- One row per contracting process: compiled and versioned release plus what search and filters need.
CREATE TABLE records (
    ocid            text        PRIMARY KEY,
    compiled        jsonb       NOT NULL,
    versioned       jsonb,                             -- derived on demand from the releases (NULL: not yet)
    latest_date     text        NOT NULL,
    latest_id       text        NOT NULL,
    release_count   integer     NOT NULL,
    summary         jsonb       NOT NULL DEFAULT '{}',
    buyer_id        text,
    buyer_name      text,
    supplier_ids    text[]      NOT NULL DEFAULT '{}',
    method          text,
    category        text,
    status          text,
    amount          numeric,
    currency        text,
    date            text,
    search          tsvector,
    seq             bigint      NOT NULL UNIQUE,       -- commit order of the last write, for seek paging
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX records_buyer_idx ON records (buyer_id);
CREATE INDEX records_suppliers_idx ON records USING gin (supplier_ids);
CREATE INDEX records_search_idx ON records USING gin (search);
CREATE INDEX records_method_status_idx ON records (method, status);

-- The ordered change log the feeds serve. Cursors are gapless and assigned in commit order:
-- every writer takes them from feed_counter's single row, whose lock it holds until it commits.
-- releases.seq and records.seq come from the same row, so paging by them never skips a row that
-- a slower transaction commits later.
CREATE TABLE changes (
    cursor      bigint      PRIMARY KEY,
    ocid        text        NOT NULL,
    release_id  text        NOT NULL,
    kind        text        NOT NULL,
    event       jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_ocid_idx ON changes (ocid, cursor);
CREATE INDEX releases_date_idx ON releases (date, seq);

CREATE TABLE feed_counter (
    id           integer PRIMARY KEY CHECK (id = 1),
    last         bigint  NOT NULL,   -- changes.cursor
    last_release bigint  NOT NULL,   -- releases.seq
    last_record  bigint  NOT NULL    -- records.seq
);
INSERT INTO feed_counter VALUES (1, 0, 0, 0);

-- Rejected releases (also on the dead-letter topic), with the reason.
CREATE TABLE rejected (
    id               bigserial   PRIMARY KEY,
    publisher        text,
    ocid             text,
    release_id       text,
    findings         jsonb       NOT NULL,
    raw              bytea       NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX rejected_publisher_idx ON rejected (publisher, id);

-- The next offset to process per partition, written in the same transaction as what it caused:
-- a re-delivered message (restart, rebalance) is recognised and changes nothing.
CREATE TABLE consumer_offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint  NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

-- How far the relay has published the changes and rejected tables to Kafka.
CREATE TABLE relay_progress (
    name  text   PRIMARY KEY,
    last  bigint NOT NULL
);
INSERT INTO relay_progress VALUES ('changes', 0), ('rejected', 0);
