-- ocds-live store, version 8: the watchdog's alerts, the history its rules keep, and webhooks.
-- Applied by `ocds-live db migrate`.
--
-- An alert is one row per (rule, key), active or withdrawn; every transition is an event of alert_events, whose
-- cursor is gapless and assigned in commit order (the writer takes it from alert_counter's row, locked until it
-- commits), so the alerts feed pages exactly like the change log. A flag found again while its alert is active
-- changes nothing: that is what makes the watchdog's at-least-once processing deliver each alert once.

CREATE TABLE alerts (
    id            bigserial   PRIMARY KEY,
    rule          text        NOT NULL,
    key           text        NOT NULL,                -- what the rule flagged (an ocid, buyer|supplier|first award, ...)
    scope         text        NOT NULL,                -- what the rule was evaluated over (an ocid, a pair, a population)
    active        boolean     NOT NULL,
    ocids         text[]      NOT NULL DEFAULT '{}',
    buyer_id      text,
    supplier_ids  text[]      NOT NULL DEFAULT '{}',
    flag          text        NOT NULL,                -- the flag's JSON (evidence and detail) when last raised
    raised_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule, key)
);
CREATE INDEX alerts_scope_idx ON alerts (scope, rule) WHERE active;
CREATE INDEX alerts_ocids_idx ON alerts USING gin (ocids) WHERE active;

CREATE TABLE alert_events (
    cursor        bigint      PRIMARY KEY,
    alert_id      bigint      NOT NULL REFERENCES alerts (id),
    kind          text        NOT NULL CHECK (kind IN ('alert.raised', 'alert.withdrawn')),
    rule          text        NOT NULL,
    buyer_id      text,
    supplier_ids  text[]      NOT NULL DEFAULT '{}',
    ocids         text[]      NOT NULL DEFAULT '{}',
    event         text        NOT NULL,                -- the event's JSON, as served
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_rule_idx ON alert_events (rule, cursor);
CREATE INDEX alert_events_buyer_idx ON alert_events (buyer_id, cursor);
CREATE INDEX alert_events_suppliers_idx ON alert_events USING gin (supplier_ids);
CREATE INDEX alert_events_ocids_idx ON alert_events USING gin (ocids);

CREATE TABLE alert_counter (
    id    integer PRIMARY KEY CHECK (id = 1),
    last  bigint  NOT NULL
);
INSERT INTO alert_counter VALUES (1, 0);

-- History the rules keep (derived from compiled releases; rewritten per process on each of its changes).
CREATE TABLE redflag_first_published (                -- MX-LATE-PUBLICATION: when an award or contract first appeared
    ocid       text NOT NULL,
    item       text NOT NULL,                          -- 'awards/<id>' or 'contracts/<id>'
    published  text NOT NULL,                          -- the release date of the change that first carried it
    PRIMARY KEY (ocid, item)
);
CREATE TABLE redflag_direct_awards (                   -- MX-REPEATED-DIRECT
    ocid      text NOT NULL,
    award     text NOT NULL,
    supplier  text NOT NULL,
    buyer     text NOT NULL,
    date      text NOT NULL,
    pointer   text NOT NULL,
    amount    double precision,
    PRIMARY KEY (ocid, award, supplier)
);
CREATE INDEX redflag_direct_awards_pair_idx ON redflag_direct_awards (buyer, supplier);
CREATE TABLE redflag_bid_ratios (                      -- R024 / R058: quartiles read by rank from the index
    ocid      text PRIMARY KEY,
    currency  text NOT NULL,
    ratio     double precision NOT NULL,
    detail    text NOT NULL
);
CREATE INDEX redflag_bid_ratios_idx ON redflag_bid_ratios (currency, ratio);
CREATE TABLE redflag_bid_counts (                      -- R038: summed per party
    ocid          text    NOT NULL,
    kind          text    NOT NULL,                    -- 'buyer', 'procuringEntity', 'tenderer'
    party         text    NOT NULL,
    disqualified  integer NOT NULL,
    submitted     integer NOT NULL,
    PRIMARY KEY (ocid, kind, party)
);
CREATE INDEX redflag_bid_counts_party_idx ON redflag_bid_counts (kind, party);

-- Webhooks registered by operators, each with its own position in alert_events and its delivery log.
CREATE TABLE webhooks (
    id                 bigserial   PRIMARY KEY,
    url                text        NOT NULL,
    secret             text        NOT NULL,           -- 'whsec_' + base64 key (Standard Webhooks)
    rules              text[],                         -- NULL: every rule
    buyer_id           text,                           -- NULL: every buyer
    delivered_through  bigint      NOT NULL,           -- alert_events cursor delivered (or given up) up to
    attempts           integer     NOT NULL DEFAULT 0, -- failed attempts of the next event
    first_attempt_at   timestamptz,
    next_attempt_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE webhook_deliveries (
    id            bigserial   PRIMARY KEY,
    webhook_id    bigint      NOT NULL REFERENCES webhooks (id),
    event_cursor  bigint      NOT NULL,
    message_id    text        NOT NULL,
    attempt       integer     NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    http_status   integer,
    error         text,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_idx ON webhook_deliveries (webhook_id, id);
