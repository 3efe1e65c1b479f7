-- The per-time-zone mornings (`[schedule] per_timezone = true`): one run row per zone and edition, and
-- each zone's meta (how far its mornings are accounted for). With SQLite each zone keeps a file of its
-- own (`data/schedule-zones/<Area>_<City>.sqlite`); here the zone is part of the key instead.

CREATE TABLE schedule_zone_runs (
    zone        TEXT NOT NULL,      -- the IANA name, `America/New_York`
    edition     TEXT NOT NULL,
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
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (zone, edition)
);

CREATE TABLE schedule_zone_meta (
    zone  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (zone, key)
);
