-- Approvals of an exact edition (newsletter/editorial/approval.py): who approved which content hash of
-- an edition and language, and when. Every approval is kept; the newest per edition and language decides.

CREATE TABLE desk_approvals (
    id           BIGSERIAL PRIMARY KEY,
    newsletter   TEXT NOT NULL,
    edition      TEXT NOT NULL,
    language     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    approved_by  TEXT NOT NULL,
    approved_at  TEXT NOT NULL
);

CREATE INDEX desk_approvals_edition ON desk_approvals (newsletter, edition, language);
