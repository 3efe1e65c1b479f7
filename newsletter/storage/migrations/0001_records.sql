-- The records a newsletter keeps, in one PostgreSQL database: the suppression list, every edition's
-- delivery ledger (one table for all editions, keyed by the ledger's name: `2016-12-30`, or
-- `2016-12-30.fr` for a language edition — the SQLite file's name) and the scheduler's runs.
-- Timestamps the SQLite files keep as ISO 8601 text stay text here, so a migrated row reads the same;
-- leases are real timestamps because the database's clock decides when one has expired.

CREATE TABLE suppression (
    key        TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    diagnostic TEXT NOT NULL DEFAULT '',  -- the remote server's words, for bounces
    message_id TEXT NOT NULL DEFAULT ''   -- the report the decision came from
);

CREATE TABLE ledger_runs (
    id          BIGSERIAL PRIMARY KEY,
    edition     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    pid         INTEGER,
    owner       TEXT,
    source      TEXT,
    sink        TEXT,
    status      TEXT NOT NULL DEFAULT 'running',
    sent        INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    invalid     INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    suppressed  INTEGER NOT NULL DEFAULT 0,
    retried     INTEGER NOT NULL DEFAULT 0,
    deferred    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ledger_runs_edition ON ledger_runs (edition, id);

CREATE TABLE ledger_recipients (
    id          BIGSERIAL PRIMARY KEY,
    edition     TEXT NOT NULL,
    key         TEXT NOT NULL,
    address     TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    locale      TEXT NOT NULL DEFAULT '',
    line        INTEGER,
    seen_run    BIGINT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    code        INTEGER,
    reply       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT,
    sent_at     TEXT,
    done_by     TEXT,          -- host:pid of the sender that recorded the final state
    lease_owner TEXT,          -- host:pid of the sender holding this pending row
    lease_until TIMESTAMPTZ,   -- when that hold lapses and another sender may take the row
    UNIQUE (edition, key)
);
CREATE INDEX ledger_recipients_pending ON ledger_recipients (edition, id) WHERE state = 'pending';

CREATE TABLE ledger_meta (
    edition TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (edition, key)
);

CREATE TABLE schedule_runs (
    edition     TEXT PRIMARY KEY,
    scheduled   TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    owner       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    sent        INTEGER,
    failed      INTEGER,
    skipped     INTEGER,
    pending     INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE schedule_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
