-- The subscriber store in PostgreSQL: the same columns as data/subscribers.sqlite, so rows move across
-- unchanged (times stay ISO 8601 text). `id` gives the insertion order SQLite's rowid gives.

CREATE TABLE subscribers (
    id           BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,          -- lower-cased address: what lookups compare
    email        TEXT NOT NULL,                 -- as first given
    name         TEXT NOT NULL DEFAULT '',
    locale       TEXT NOT NULL DEFAULT '',
    timezone     TEXT NOT NULL DEFAULT '',      -- IANA name, or empty (the schedule's zone)
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    updated_at   TEXT NOT NULL,
    consent      TEXT                           -- JSON of a Consent, or NULL
);
CREATE INDEX subscribers_status ON subscribers (status, id);
