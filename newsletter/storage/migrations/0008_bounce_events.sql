-- Every bounce and complaint the bounce run (or a webhook) acted on, with the edition that caused it:
-- the day and language edition its return path token or the original message's headers name ('' when
-- the report names none: it then counts by the day it arrived). `newsletter status` reads the rates per
-- edition from here. The reader is a hash of the address: rates need no address.

CREATE TABLE bounce_events (
    message_id TEXT NOT NULL,
    reader     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    edition    TEXT NOT NULL,
    language   TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (message_id, reader)
);

CREATE INDEX bounce_events_edition ON bounce_events (edition);
