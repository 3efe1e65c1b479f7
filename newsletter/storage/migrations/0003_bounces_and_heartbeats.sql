-- The bounce records follow `database_url` like every other store: the report Message-IDs already
-- handled, and each address's soft bounces with the report they came from (data/bounces.sqlite's tables).
-- And a sender's heartbeat: `seen_at` moves with every lease renewal, so `newsletter status` can tell a
-- sender that is still working from one that was lost (killed, its machine gone) and left "running".

CREATE TABLE bounce_processed (
    message_id   TEXT PRIMARY KEY,
    processed_at TEXT NOT NULL,
    kind         TEXT NOT NULL
);

CREATE TABLE bounce_soft (
    key        TEXT NOT NULL,   -- the address, lower-cased
    message_id TEXT NOT NULL,   -- one report counts once, however often it is read
    at         TEXT NOT NULL,
    diagnostic TEXT NOT NULL,
    PRIMARY KEY (key, message_id)
);

ALTER TABLE ledger_runs ADD COLUMN seen_at TIMESTAMPTZ;
