-- The reader base: the reader, their subscriptions (one per newsletter) and their history live beside
-- the suppression list in this one database, so a reader's state changes write all of them in one
-- transaction. A reader may now be `complained`, and may pause the newsletter until a date.
-- (The subscriptions of readers confirmed before this step are added by the code on first open, once:
-- the newsletter's id comes from the settings, which SQL does not know.)

ALTER TABLE subscribers DROP CONSTRAINT subscribers_status_check;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_status_check
    CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained'));
ALTER TABLE subscribers ADD COLUMN paused_until TEXT;

CREATE TABLE subscriptions (
    reader_key   TEXT NOT NULL,
    newsletter   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    confirmed_at TEXT,
    consent      TEXT,
    PRIMARY KEY (reader_key, newsletter)
);
CREATE INDEX subscriptions_newsletter ON subscriptions (newsletter, status);

CREATE TABLE reader_events (
    id          BIGSERIAL PRIMARY KEY,
    reader_key  TEXT NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    newsletter  TEXT NOT NULL DEFAULT '',
    via         TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX reader_events_reader ON reader_events (reader_key, id);

CREATE TABLE reader_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
